package templates

import "testing"

// Template files never panic the parser, and what it accepts is a sane template.
func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(`{"title":"x","managers":1,"workers":1,"swarm":true}`))
	f.Add([]byte(`{"title":"x","managers":0,"workers":1}`))
	f.Add([]byte(`{"managers":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := parse("fuzz", data)
		if err != nil {
			return
		}
		if tmpl.Nodes() < 1 || tmpl.Nodes() > 50 || tmpl.Managers < 0 || tmpl.Workers < 0 || tmpl.Title == "" ||
			(tmpl.Swarm && tmpl.Managers == 0) {
			t.Fatalf("accepted %+v", tmpl)
		}
	})
}

// The embedded templates are the four the design promises, all valid.
func TestTemplates(t *testing.T) {
	ts, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{"1-node": {0, 1}, "swarm-1m1w": {1, 1}, "swarm-3m2w": {3, 2}, "swarm-5m": {5, 0}, "1-node-swarm": {1, 0}}
	for name, mw := range want {
		if tmpl, ok := ts[name]; !ok || tmpl.Managers != mw[0] || tmpl.Workers != mw[1] {
			t.Errorf("template %s: %+v", name, tmpl)
		}
	}
}
