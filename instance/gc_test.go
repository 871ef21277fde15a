package instance

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// gcChildEnv makes this test binary a child that builds a session and is killed while doing it.
const gcChildEnv = "SANDLOT_GC_CHILD_SESSION"

// TestGCChild is the child: it is skipped unless TestGCAfterKill starts it.
func TestGCChild(t *testing.T) {
	session := os.Getenv(gcChildEnv)
	if session == "" {
		t.Skip("run by TestGCAfterKill")
	}
	d := newDriver(t, NetworkKind(os.Getenv(gcChildEnv+"_KIND")), nil)
	ctx := context.Background()
	if _, err := d.CreateNetwork(ctx, session); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, session, Spec{Name: "node1"}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("node1 ready")
	_, _ = d.Create(ctx, session, Spec{Name: "node2"}) // killed midway through this
	time.Sleep(time.Minute)
}

// Killing a process midway through making a session and then running GC removes everything labelled for the
// dead session, and nothing else: not a live session's nodes, not an unlabelled container.
func TestGCAfterKill(t *testing.T) {
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			d := newDriver(t, kind, nil)
			ctx := testContext(t)
			live, _ := newSession(t, d)
			createNodes(t, d, live, 1)
			unlabelled := createUnlabelled(t, d)

			dead := "gcdead" + live[4:]
			child := exec.Command(os.Args[0], "-test.run=^TestGCChild$", "-test.v")
			child.Env = append(os.Environ(), gcChildEnv+"="+dead, gcChildEnv+"_KIND="+string(kind))
			stdout, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			child.Stderr = os.Stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.DeleteSession(context.Background(), dead) })
			ready := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if sc.Text() == "node1 ready" {
						ready <- true
					}
				}
				ready <- false
			}()
			select {
			case ok := <-ready:
				if !ok {
					t.Fatal("the child ended before node1 was ready")
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("the child did not make node1")
			}
			time.Sleep(300 * time.Millisecond) // node2 is being made now
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			if n := countLabelled(t, d, dead); n == 0 {
				t.Fatal("the killed child left nothing behind, so GC is not tested")
			}

			report, err := d.GC(ctx, func(_ context.Context, s string) (bool, error) { return s != dead, nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(report.Sessions) != 1 || report.Sessions[0] != dead || report.Networks != 1 {
				t.Errorf("report %+v", report)
			}
			// The engine forgets a removed swarm network a moment after the removal succeeded.
			eventually(t, 15*time.Second, func() error {
				if n := countLabelled(t, d, dead); n != 0 {
					return fmt.Errorf("%d objects of the dead session remain", n)
				}
				return nil
			})
			if list, err := d.List(ctx, live); err != nil || len(list) != 1 || list[0].Status != "running" {
				t.Errorf("the live session's nodes: %+v, %v", list, err)
			}
			if _, err := d.docker.ContainerInspect(ctx, unlabelled); err != nil {
				t.Errorf("the unlabelled container is gone: %v", err)
			}
		})
	}
}

// createUnlabelled makes a container (not started) that carries no Sandlot label.
func createUnlabelled(t *testing.T, d *Driver) string {
	t.Helper()
	c, err := d.docker.ContainerCreate(testContext(t), &container.Config{Image: d.cfg.Image, Entrypoint: []string{"true"}},
		nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	return c.ID
}

// countLabelled counts the containers, networks and volumes labelled for session.
func countLabelled(t *testing.T, d *Driver, session string) int {
	t.Helper()
	ctx := testContext(t)
	f := filters.NewArgs(filters.Arg("label", LabelSession+"="+session))
	cs, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := d.docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, "container "+c.Labels[LabelInstance]+" "+c.State)
	}
	for _, v := range vs.Volumes {
		names = append(names, "volume "+v.Name[:12])
	}
	t.Logf("session %s: %d networks, %s", session, len(ns), strings.Join(names, ", "))
	return len(cs) + len(ns) + len(vs.Volumes)
}

// GC looks only at its own deployment's objects: a GC that takes every session for dead leaves another owner's
// session running.
func TestGCRespectsOwner(t *testing.T) {
	mine := newDriver(t, NetworkBridge, func(c *Config) { c.Owner = testOwner + "-gc-mine" })
	theirs := newDriver(t, NetworkBridge, func(c *Config) { c.Owner = testOwner + "-gc-theirs" })
	ownSession, _ := newSession(t, mine)
	createNodes(t, mine, ownSession, 1)
	otherSession, _ := newSession(t, theirs)
	createNodes(t, theirs, otherSession, 1)

	report, err := mine.GC(testContext(t), func(context.Context, string) (bool, error) { return false, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Sessions) != 1 || report.Sessions[0] != ownSession {
		t.Fatalf("collected %v, want only %s", report.Sessions, ownSession)
	}
	if list, err := theirs.List(testContext(t), otherSession); err != nil || len(list) != 1 || list[0].Status != "running" {
		t.Fatalf("the other owner's session: %+v, %v", list, err)
	}
}
