package sfsim

// Dump is a snapshot of the org's live records, read by tools outside the project (the
// end-to-end checks of `tandem dev`): users, contacts and events, plus accounts and event
// relations. Each record maps API names to values; null fields are left out, datetimes are
// RFC 3339 strings, dates yyyy-mm-dd.
type Dump struct {
	Users          []map[string]any `json:"users"`
	Contacts       []map[string]any `json:"contacts"`
	Events         []map[string]any `json:"events"`
	Accounts       []map[string]any `json:"accounts"`
	EventRelations []map[string]any `json:"eventRelations"`
}

// Dump returns the org's live records in creation order.
func (s *Server) Dump() *Dump {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := func(object string) []map[string]any {
		out := []map[string]any{}
		o := s.schema.object(object)
		s.st.each(o, func(r *record) bool {
			if r.deleted {
				return true
			}
			m := make(map[string]any, len(r.fields))
			for k, v := range r.fields {
				m[k] = dumpValue(v)
			}
			out = append(out, m)
			return true
		})
		return out
	}
	return &Dump{
		Users:          list("User"),
		Contacts:       list("Contact"),
		Events:         list("Event"),
		Accounts:       list("Account"),
		EventRelations: list("EventRelation"),
	}
}
