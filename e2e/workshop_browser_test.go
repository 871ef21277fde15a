package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// createdWorkshop is what the test reads of the answer of POST /api/v1/workshops.
type createdWorkshop struct {
	ID              string `json:"id"`
	Code            string `json:"code"`
	JoinURL         string `json:"join_url"`
	InstructorURL   string `json:"instructor_url"`
	InstructorToken string `json:"instructor_token"`
}

// A timed training of two seats, through the pages: two attendees join from the landing page and count down to the
// start, a third is queued; at the start the two have shells, the instructor's dashboard lists all three, a
// broadcast from it reaches both at once, ending one attendee lets the queued one in, and the instructor watches
// an attendee's terminal. The workshop's end ends every page, and leaves nothing in Docker.
func TestBrowserWorkshop(t *testing.T) {
	needEngine(t)
	began := time.Now()
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "512")
	// The browsers first: the 20 s before the start are for joining, not for starting chromium.
	names := []string{"Ada", "Grace", "Linus"}
	attendees := make([]*page, len(names))
	for i := range attendees {
		attendees[i] = newPage(t, srv.url)
	}
	instructor := newPage(t, srv.url)

	const title = "Swarm in a morning"
	startsAt := time.Now().Add(20 * time.Second).UTC()
	var ws createdWorkshop
	post(t, srv.url+"/api/v1/workshops", admin, fmt.Sprintf(`{"title":%q,"template":"1-node","seats":2,"starts_at":%q,"ends_at":%q}`,
		title, startsAt.Format(time.RFC3339Nano), time.Now().Add(120*time.Second).UTC().Format(time.RFC3339Nano)), http.StatusCreated, &ws)
	if ws.Code == "" || ws.InstructorToken == "" || !strings.HasSuffix(ws.JoinURL, "/w/"+ws.Code) ||
		!strings.HasSuffix(ws.InstructorURL, "/w/"+ws.ID+"/instructor#token="+ws.InstructorToken) {
		t.Fatalf("the workshop's links: %+v", ws)
	}
	var sessions []string // of the attendees, as their pages open them
	t.Cleanup(func() {
		endWorkshop(t, srv.url, ws)
		for _, id := range sessions {
			deleteSession(t, srv.url, id)
		}
	})

	// Two join from the landing page and wait for the start; the third is queued.
	for i, p := range attendees {
		joinByCode(p, ws.Code, names[i])
	}
	for _, p := range attendees[:2] {
		left := p.text(".workshop-page .countdown[role=timer]")
		if s := countdownSeconds(left); s <= 0 || s > 20 {
			t.Fatalf("the waiting view counts down %q, want at most 20 s to the start", left)
		}
	}
	if got := attendees[2].text(".workshop-page .countdown"); !regexp.MustCompile(`^position\s+1$`).MatchString(got) {
		t.Fatalf("the third attendee's page says %q, want position 1 in the queue", got)
	}

	instructor.do("open the dashboard", chromedp.Navigate(ws.InstructorURL))
	instructor.waitJS("the dashboard", `!!document.querySelector("table.attendees")`, 10*time.Second)
	var address string
	instructor.eval(`location.href`, &address)
	if strings.Contains(address, ws.InstructorToken) {
		t.Fatalf("the instructor's token stays in the address bar: %s", address)
	}
	if got := instructor.text(".big-code"); strings.ReplaceAll(got, "-", "") != ws.Code {
		t.Fatalf("the dashboard shows the code %q, want %s", got, ws.Code)
	}
	waitRows(instructor, "Ada waiting, Grace waiting, Linus queued 1", 10*time.Second)

	// The start: both seated attendees get a shell in node1, and the dashboard follows.
	for _, p := range attendees[:2] {
		sessions = append(sessions, enterSession(p, title, time.Until(startsAt)+60*time.Second))
	}
	t.Logf("both seated attendees have a prompt %s after the start", time.Since(startsAt).Round(100*time.Millisecond))
	waitRows(instructor, "Ada active, Grace active, Linus queued 1", 10*time.Second)

	// A broadcast from the dashboard reaches both pages within 2 s.
	const message = "Ten minutes for the first exercise"
	instructor.do("send a broadcast", chromedp.Click(chromedp.CSS("#broadcast-text")), typeKeys(message),
		chromedp.Click(chromedp.CSS(`form.broadcast button[type="submit"]`)))
	sent := time.Now()
	for i, p := range attendees[:2] {
		p.waitJS(names[i]+"'s page shows the broadcast", fmt.Sprintf(
			`[...document.querySelectorAll(".banner.broadcast")].some(b => b.innerText.includes(%q))`, message), 10*time.Second)
		if late := time.Since(sent); late > 2*time.Second {
			t.Errorf("the broadcast reached %s's page %s after it was sent, want within 2 s", names[i], late.Round(time.Millisecond))
		}
	}
	t.Logf("the broadcast reached both pages within %s", time.Since(sent).Round(time.Millisecond))

	// Ending Ada from the dashboard (two clicks) ends her session and lets Linus in, at once.
	ada := rowID(instructor, "Ada")
	end := chromedp.CSS(fmt.Sprintf(`tr[data-attendee=%q] button.danger`, ada))
	instructor.do("end Ada's session", chromedp.Click(end), chromedp.Click(end))
	ended := time.Now()
	attendees[0].waitJS("Ada's page says the instructor ended her session",
		`document.querySelector(".ended .reason")?.dataset.reason === "admin"`, 10*time.Second)
	if got := attendees[0].text(".ended .reason"); !strings.Contains(got, "The instructor ended it") {
		t.Errorf("Ada's page says %q", got)
	}
	attendees[2].waitJS("Linus's page to leave the queue", `!document.querySelector(".workshop-page")?.innerText.includes("in the queue")`,
		5*time.Second)
	t.Logf("Linus's page left the queue %s after Ada was ended", time.Since(ended).Round(time.Millisecond))
	sessions = append(sessions, enterSession(attendees[2], title, 60*time.Second))
	waitRows(instructor, "Ada ended, Grace active, Linus active", 10*time.Second)

	// The instructor watches Grace's terminal, read only, while she types.
	grace := rowID(instructor, "Grace")
	instructor.do("watch Grace's node1", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-attendee=%q] button.node-chip`, grace))))
	instructor.waitJS("the watch panel", `!!document.querySelector("aside.watch sandlot-terminal")`, 10*time.Second)
	instructor.waitJS("Grace's prompt in the watch panel", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector("aside.watch sandlot-terminal").text())`,
		20*time.Second)
	attendees[1].pick("node1")
	attendees[1].typeLine("echo watched-$((6*7))")
	attendees[1].waitScreen("node1", 1, `(?m)^watched-42$`, 10*time.Second)
	instructor.waitJS("Grace's output in the watch panel", `/^watched-42$/m.test(document.querySelector("aside.watch sandlot-terminal").text())`,
		5*time.Second)

	// The end, by the API: every attendee's page says the workshop has ended, and nothing is left.
	var detail struct {
		State     string `json:"state"`
		Attendees []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			EndReason string `json:"end_reason"`
		} `json:"attendees"`
	}
	post(t, srv.url+"/api/v1/workshops/"+ws.ID+"/end", ws.InstructorToken, `{}`, http.StatusOK, &detail)
	if detail.State != "ended" {
		t.Errorf("after the end the workshop is %q", detail.State)
	}
	for _, a := range detail.Attendees {
		want := "workshop_ended"
		if a.Name == "Ada" { // the instructor ended her before the end
			want = "admin"
		}
		if a.State != "ended" || a.EndReason != want {
			t.Errorf("after the end %s is %s (%q), want ended (%s)", a.Name, a.State, a.EndReason, want)
		}
	}
	for i, p := range attendees {
		if i == 0 {
			continue // Ada's page says already that the instructor ended her session
		}
		p.waitJS(names[i]+"'s page to say the workshop has ended",
			`document.querySelector(".ended .reason")?.dataset.reason === "workshop_ended"`, 10*time.Second)
		if got := p.text("#ended-title"); got != "The workshop has ended" {
			t.Errorf("%s's page says %q", names[i], got)
		}
	}
	waitRows(instructor, "Ada ended, Grace ended, Linus ended", 10*time.Second)
	for _, id := range sessions {
		waitFor(t, 30*time.Second, "nothing of session "+id+" left in Docker", func() bool { return countLabelled(t, id) == 0 })
	}
	t.Logf("the whole workshop took %s", time.Since(began).Round(100*time.Millisecond))
}

// joinByCode types code into the landing page's "Join a workshop", then name into the join page, and waits for
// the attendee's view (waiting or queued).
func joinByCode(p *page, code, name string) {
	p.t.Helper()
	p.do("open the landing page", chromedp.Navigate(p.url+"/"))
	// As a person may type it: lower case, with a dash.
	typed := strings.ToLower(code[:3] + "-" + code[3:])
	p.do(name+" types the code", chromedp.Click(chromedp.CSS("#join-code-input")), typeKeys(typed),
		chromedp.Click(chromedp.CSS("#join-code-go")))
	p.waitJS("the join page", fmt.Sprintf(`location.pathname === "/w/%s" && !!document.querySelector("#join-name")`, code),
		10*time.Second)
	p.do(name+" gives a name", chromedp.Click(chromedp.CSS("#join-name")), typeKeys(name),
		chromedp.Click(chromedp.CSS("#join")))
	p.waitJS(name+"'s place", `!!document.querySelector(".workshop-page .countdown") && !!document.querySelector("#personal-url")`,
		10*time.Second)
}

// enterSession waits for the join page to open the attendee's session, then for a prompt in node1; it returns the
// session's id.
func enterSession(p *page, title string, within time.Duration) string {
	p.t.Helper()
	p.waitJS("the session page", `location.pathname.startsWith("/s/") && !!document.querySelector("sl-session .bar")`, within)
	if got := p.text("#workshop-title"); got != title {
		p.fatalf("the session page shows the workshop %q, want %q", got, title)
	}
	if got := p.text("#training-left"); !regexp.MustCompile(`^workshop \d\d:\d\d`).MatchString(got) {
		p.fatalf("the session page's workshop clock says %q", got)
	}
	p.waitNodes(1, 60*time.Second)
	p.pick("node1")
	p.waitPrompt("node1", 1)
	return sessionIDOf(p)
}

// rows is the dashboard's attendees as "name state[ position]", in the order they joined.
func rows(p *page) string {
	p.t.Helper()
	var s string
	p.eval(`[...document.querySelectorAll("table.attendees tr[data-attendee]")].map(r =>
		r.querySelector("th").innerText.trim() + " " + r.className.replace(/^state-/, "") +
		(r.querySelector("td .muted")?.innerText.replace("#", " ") ?? "")).join(", ")`, &s)
	return s
}

// waitRows waits until the dashboard lists the attendees as want (see rows).
func waitRows(p *page, want string, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := rows(p)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.fatalf("the dashboard lists %q after %s, want %q", got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rowID is the id of the attendee called name, as the dashboard has it.
func rowID(p *page, name string) string {
	p.t.Helper()
	var id string
	p.eval(fmt.Sprintf(`[...document.querySelectorAll("table.attendees tr[data-attendee]")]
		.find(r => r.querySelector("th").innerText.trim() === %q)?.dataset.attendee ?? ""`, name), &id)
	if id == "" {
		p.fatalf("the dashboard has no row for %s", name)
	}
	return id
}

// countdownSeconds reads a countdown of the join page ("00:17"); -1 if it is not one.
func countdownSeconds(s string) int {
	m := regexp.MustCompile(`^(\d+):(\d\d)$`).FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	mins, _ := strconv.Atoi(m[1])
	secs, _ := strconv.Atoi(m[2])
	return 60*mins + secs
}

// endWorkshop ends a workshop (if it still runs), not failing: a test that failed half way leaves no sessions.
func endWorkshop(t testing.TB, url string, ws createdWorkshop) {
	req, _ := http.NewRequest("POST", url+"/api/v1/workshops/"+ws.ID+"/end", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ws.InstructorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Logf("end the workshop: %v", err)
		return
	}
	resp.Body.Close()
}
