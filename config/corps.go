package config

import "github.com/wxhub/wxhub/sender"

// corpLimits are the sender's per-corp overrides from wecom.corps[].
func (c *Config) corpLimits() map[string]sender.CorpLimits {
	var m map[string]sender.CorpLimits
	for _, corp := range c.WeCom.Corps {
		if corp.CorpAPIMinute == 0 && corp.CorpAPIHour == 0 {
			continue
		}
		if m == nil {
			m = map[string]sender.CorpLimits{}
		}
		m[corp.CorpID] = sender.CorpLimits{CorpAPIMinute: corp.CorpAPIMinute, CorpAPIHour: corp.CorpAPIHour}
	}
	return m
}
