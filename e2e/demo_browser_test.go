package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The instructor's demo through the pages: the dashboard starts it and opens it, an attendee's page offers to
// watch it and shows what the instructor types there, and what the attendee types into the watched view reaches
// nothing. The workshop's end ends the demo too.
func TestBrowserWorkshopDemo(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512")
	attendee, instructor := newPage(t, srv.url), newPage(t, srv.url)
	const title = "Demo day"
	var ws createdWorkshop
	post(t, srv.url+"/api/v1/workshops", admin, fmt.Sprintf(`{"title":%q,"template":"1-node","seats":2,"duration":"30m"}`, title),
		http.StatusCreated, &ws)
	t.Cleanup(func() { endWorkshop(t, srv.url, ws) })

	attendee.do("open the join link", chromedp.Navigate(ws.JoinURL))
	attendee.waitJS("the join page", `!!document.querySelector("#join-name")`, 10*time.Second)
	attendee.do("Ada joins", chromedp.Click(chromedp.CSS("#join-name")), typeKeys("Ada"), chromedp.Click(chromedp.CSS("#join")))
	attendee.waitJS("Ada's session", `location.pathname.startsWith("/s/") && !!document.querySelector("sl-session .bar")`, 60*time.Second)
	attendee.waitNodes(1, 60*time.Second)
	attendee.pick("node1")
	attendee.waitPrompt("node1", 1)
	var offered bool
	if attendee.eval(`!!document.querySelector("#watch-demo")`, &offered); offered {
		t.Fatal("the attendee's page offers a demo before the instructor started one")
	}

	instructor.do("open the dashboard", chromedp.Navigate(ws.InstructorURL))
	instructor.waitJS("the dashboard's demo button", `!!document.querySelector("#demo")`, 10*time.Second)
	instructor.do("start a demo", chromedp.Click(chromedp.CSS("#demo")))
	instructor.waitJS("the demo's link", `!!document.querySelector("#demo-link")`, 60*time.Second)
	var link string
	instructor.eval(`document.querySelector("#demo-link").href`, &link)
	instructor.do("open the demo", chromedp.Navigate(link))
	instructor.waitJS("the demo session", `location.pathname.startsWith("/s/") && !location.hash.includes("token") &&
		!!document.querySelector("sl-session .bar")`, 10*time.Second)
	if got := instructor.text("#workshop-title"); got != title {
		t.Errorf("the demo session shows the workshop %q", got)
	}
	instructor.waitNodes(1, 60*time.Second)
	instructor.pick("node1")
	instructor.waitPrompt("node1", 1)

	attendee.waitJS("the offer to watch the demo", `!!document.querySelector("#watch-demo")`, 10*time.Second)
	attendee.do("watch the demo", chromedp.Click(chromedp.CSS("#watch-demo")))
	instructor.typeLine("echo demo-$((6*7))")
	attendee.waitJS("the instructor's output in the watched demo",
		`/^demo-42$/m.test(document.querySelector("sandlot-terminal.demo-term")?.text() ?? "")`, 10*time.Second)

	attendee.do("type into the watched demo", chromedp.Click(chromedp.CSS("sandlot-terminal.demo-term")),
		typeKeys("echo hijacked\r"))
	instructor.typeLine("echo still-mine")
	screen := instructor.waitScreen("node1", 1, `(?m)^still-mine$`, 10*time.Second)
	if strings.Contains(screen, "hijacked") {
		t.Errorf("what the attendee typed into the watched demo reached the instructor's shell:\n%s", screen)
	}
	if got := attendee.screen("node1", 1); strings.Contains(got, "hijacked") {
		t.Errorf("what the attendee typed into the demo reached their own shell:\n%s", got)
	}

	endWorkshop(t, srv.url, ws)
	instructor.waitJS("the demo's page says the workshop has ended",
		`document.querySelector(".ended .reason")?.dataset.reason === "workshop_ended"`, 10*time.Second)
}
