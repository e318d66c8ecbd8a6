package sim

// corpOf is the corp id of app: its own when the simulator plays several
// corps, else Config.CorpID.
func (s *Server) corpOf(a *App) string {
	if a.CorpID != "" {
		return a.CorpID
	}
	return s.cfg.CorpID
}

// knownCorp reports whether id is one of the simulated corps.
func (s *Server) knownCorp(id string) bool {
	if id == s.cfg.CorpID {
		return true
	}
	for _, a := range s.appsByName {
		if a.CorpID == id {
			return true
		}
	}
	return false
}

// The demo's second corp: a dealer (经销商) with its own app and address
// book, for tests of several corps in one hub. Its department ids overlap the
// demo corp's (each corp has its root 1 and a department 2), its userids not.
const (
	DemoDealerCorpID = "wwdealer00000001"
	DemoDealerApp    = "dealer"
	DemoDealerAgent  = 1000010
)

// AddDemoDealer adds the dealer corp to c: app "dealer", departments 1 (root),
// 2 and 3, members chenyi and liuer (department 2) and zhousan (3), tag 1
// (chenyi).
func AddDemoDealer(c *Config) {
	corp := DemoDealerCorpID
	c.Apps = append(c.Apps, App{Name: DemoDealerApp, AgentID: DemoDealerAgent, Secret: "dealer-demo-secret",
		Token: "dEaLeR", EncodingAESKey: "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFg", CorpID: corp})
	c.Departments = append(c.Departments,
		Department{ID: 1, Name: "示例经销商", Order: 100000000, CorpID: corp},
		Department{ID: 2, Name: "华东经销部", ParentID: 1, Order: 100, Leaders: []string{"chenyi"}, CorpID: corp},
		Department{ID: 3, Name: "华南经销部", ParentID: 1, Order: 90, CorpID: corp})
	c.Tags = append(c.Tags, Tag{ID: 1, Name: "金牌经销商", CorpID: corp})
	c.Users = append(c.Users,
		User{UserID: "chenyi", Name: "陈一", Department: []int64{1, 2}, IsLeaderInDept: []int{0, 1}, Position: "经销商经理", Tags: []int64{1},
			ExtAttr: map[string]string{"工号": "D001"}, CorpID: corp},
		User{UserID: "liuer", Name: "刘二", Department: []int64{1, 2}, Position: "销售", CorpID: corp},
		User{UserID: "zhousan", Name: "周三", Department: []int64{1, 3}, Position: "销售", CorpID: corp})
}
