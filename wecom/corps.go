package wecom

import "fmt"

// CorpConfig is one enterprise account (企业) of wecom.corps[]: a company may
// hold several, and suppliers or dealers often have their own. WeCom's API
// host is the same for all; tokens differ by corp id and secret.
type CorpConfig struct {
	CorpID string      `yaml:"corp_id"`
	Apps   []AppConfig `yaml:"apps"`
	// CorpAPIMinute and CorpAPIHour override the sender's limits of the same
	// name (calls of one API by the whole corp) for this corp; 0 keeps them.
	CorpAPIMinute int `yaml:"corp_api_minute"`
	CorpAPIHour   int `yaml:"corp_api_hour"`
}

// flatten appends every corp's apps to Apps with their CorpID, once.
func (c Config) flatten() Config {
	if c.flat > 0 {
		return c
	}
	if c.CorpID == "" && len(c.Apps) == 0 && len(c.Corps) > 0 {
		c.CorpID = c.Corps[0].CorpID // the first corp is the hub's own
	}
	apps := make([]AppConfig, 0, len(c.Apps))
	for _, a := range c.Apps {
		a.CorpID = c.CorpID
		apps = append(apps, a)
	}
	top := len(apps)
	for _, corp := range c.Corps {
		for _, a := range corp.Apps {
			a.CorpID = corp.CorpID
			apps = append(apps, a)
		}
	}
	c.Apps, c.flat = apps, top+1
	return c
}

// topApps are the apps of the top-level wecom.apps (not those of corps).
func (c Config) topApps() []AppConfig {
	if c.flat > 0 {
		return c.Apps[:c.flat-1]
	}
	return c.Apps
}

// CorpIDs are the corps' ids, the top-level corp first.
func (c Config) CorpIDs() []string {
	var ids []string
	if c.CorpID != "" && (len(c.topApps()) > 0 || len(c.Corps) == 0 || c.Corps[0].CorpID != c.CorpID) {
		ids = append(ids, c.CorpID)
	}
	for _, corp := range c.Corps {
		ids = append(ids, corp.CorpID)
	}
	return ids
}

// Corp returns the corps[] entry of id (false for the top-level corp).
func (c Config) Corp(id string) (CorpConfig, bool) {
	for _, corp := range c.Corps {
		if corp.CorpID == id {
			return corp, true
		}
	}
	return CorpConfig{}, false
}

func (c Config) validateCorps(seen map[string]bool) error {
	ids := map[string]string{}
	if len(c.topApps()) > 0 {
		ids[c.CorpID] = "wecom.corp_id"
	}
	for i, corp := range c.Corps {
		key := fmt.Sprintf("wecom.corps[%d]", i)
		if corp.CorpID == "" {
			return fmt.Errorf("%s.corp_id: is required", key)
		}
		if prev, dup := ids[corp.CorpID]; dup {
			return fmt.Errorf("%s.corp_id: %q is already %s", key, corp.CorpID, prev)
		}
		ids[corp.CorpID] = key + ".corp_id"
		if len(corp.Apps) == 0 {
			return fmt.Errorf("%s.apps: at least one app", key)
		}
		if corp.CorpAPIMinute < 0 {
			return fmt.Errorf("%s.corp_api_minute: must not be negative (0 keeps sender.limits)", key)
		}
		if corp.CorpAPIHour < 0 {
			return fmt.Errorf("%s.corp_api_hour: must not be negative (0 keeps sender.limits)", key)
		}
		if err := checkApps(key+".apps", corp.Apps, seen); err != nil {
			return err
		}
	}
	return nil
}

// CorpOf is the corp id of app: its own, else (a Config not through
// WithDefaults) the top-level corp_id.
func (c Config) CorpOf(app AppConfig) string {
	if app.CorpID != "" {
		return app.CorpID
	}
	return c.CorpID
}
