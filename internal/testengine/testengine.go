// Package testengine says whether tests may use a Docker engine. `make unit` sets SANDLOT_NO_ENGINE=1: then every
// test that needs an engine is skipped before it connects to one, so that those tests touch no engine, whether or
// not one answers. `make test` sets SANDLOT_REQUIRE_DOCKER=1: then a test that finds no engine fails rather than
// skipping.
package testengine

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// Skip skips t when tests may not use an engine.
func Skip(t testing.TB) {
	t.Helper()
	if Forbidden() {
		t.Skip("SANDLOT_NO_ENGINE=1: this test needs a Docker engine")
	}
}

// Forbidden says whether tests may not use an engine.
func Forbidden() bool { return os.Getenv("SANDLOT_NO_ENGINE") == "1" }

// Required says whether a test that finds no engine must fail.
func Required() bool { return os.Getenv("SANDLOT_REQUIRE_DOCKER") == "1" }

// Labelled describes what an engine holds of a session: its containers, networks and volumes (by the
// sandlot.session label). An engine that cannot be asked is an error, never "nothing left".
func Labelled(ctx context.Context, docker *client.Client, session string) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", "sandlot.session="+session))
	cs, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers of session %s: %w", session, err)
	}
	ns, err := docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks of session %s: %w", session, err)
	}
	vs, err := docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list volumes of session %s: %w", session, err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, "container "+c.Names[0]+" "+c.State)
	}
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	for _, v := range vs.Volumes {
		out = append(out, "volume "+v.Name)
	}
	return out, nil
}
