// Package templates holds the labs a session can be set up with in one call: their nodes, and whether they form a
// swarm. Templates are data, one small JSON file each beside this file, embedded in the binary.
package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"github.com/sandlot/sandlot/images"
	"path"
	"sort"
	"strings"
)

// Template is a lab set up in one call: its nodes, and whether they form a swarm (node1 to nodeM managers, the
// rest workers). Templates are data: one small JSON file each in templates/.
type Template struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Managers    int    `json:"managers"`
	Workers     int    `json:"workers"`
	Swarm       bool   `json:"swarm"`
	// Images are put into the image cache when the server starts, so that the lab's pulls never wait for Docker
	// Hub; with PreloadIntoNodes, each node of the lab also has them in its own engine when it is ready
	// (docker run starts at once, for a node start that takes longer: see the README).
	Images           []string `json:"images,omitempty"`
	PreloadIntoNodes bool     `json:"preload_into_nodes,omitempty"`
}

// NodeImages are the images pulled into each node's engine as it is made.
func (t Template) NodeImages() []string {
	if !t.PreloadIntoNodes {
		return nil
	}
	return t.Images
}

// Nodes is how many nodes the template makes.
func (t Template) Nodes() int { return t.Managers + t.Workers }

//go:embed *.json
var templateFiles embed.FS

// Set is the known templates by name.
type Set map[string]Template

// Load reads the embedded templates.
func Load() (Set, error) {
	entries, err := templateFiles.ReadDir(".")
	if err != nil {
		return nil, err
	}
	out := Set{}
	for _, e := range entries {
		data, err := templateFiles.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		t, err := parse(strings.TrimSuffix(e.Name(), path.Ext(e.Name())), data)
		if err != nil {
			return nil, err
		}
		out[t.Name] = t
	}
	return out, nil
}

// parse decodes and checks one template file.
func parse(name string, data []byte) (Template, error) {
	var t Template
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("template %s: %w", name, err)
	}
	t.Name = name
	switch {
	case t.Managers < 0 || t.Workers < 0 || t.Nodes() == 0 || t.Nodes() > 50:
		return t, fmt.Errorf("template %s: needs 1 to 50 nodes, has %d managers and %d workers", name, t.Managers, t.Workers)
	case t.Swarm && t.Managers == 0:
		return t, fmt.Errorf("template %s: a swarm needs a manager", name)
	case !t.Swarm && t.Managers > 0:
		return t, fmt.Errorf("template %s: managers without a swarm", name)
	case t.Title == "":
		return t, fmt.Errorf("template %s: no title", name)
	case t.PreloadIntoNodes && len(t.Images) == 0:
		return t, fmt.Errorf("template %s: preload_into_nodes without images", name)
	}
	for _, ref := range t.Images {
		if err := images.CheckRef(ref); err != nil {
			return t, fmt.Errorf("template %s: %w", name, err)
		}
	}
	return t, nil
}

// List is the templates sorted by name.
func (ts Set) List() []Template {
	out := make([]Template, 0, len(ts))
	for _, t := range ts {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
