package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// createdWorkshop is what the test reads of the answer of POST /api/v1/workshops.
type createdWorkshop struct {
	ID              string `json:"id"`
	Code            string `json:"code"`
	JoinURL         string `json:"join_url"`
	InstructorURL   string `json:"instructor_url"`
	InstructorToken string `json:"instructor_token"`
}

// workshopDetail is what the test reads of a workshop as its instructor sees it.
type workshopDetail struct {
	State     string `json:"state"`
	Attendees []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		EndReason string `json:"end_reason"`
	} `json:"attendees"`
}

// A timed training of six seats, through the pages of one browser with a context per person: six attendees join
// before the start (one from the landing page, the others by the join link) and count down to it, a seventh is
// queued. At the start the six have shells, and the five-minute warning (the window is shorter than that). The
// instructor's dashboard lists everyone with their state and last activity; a broadcast reaches every page; the
// instructor watches an attendee's terminal, and typing into it does nothing; ending one attendee lets the queued
// one in, and another ends their own session. Meanwhile a second workshop gives the two who left thirty more
// minutes from the dashboard ("+30 min for everyone"), shown on their pages, and is ended from the dashboard. At
// the first workshop's ends_at every page still open says it has ended, and nothing is left in Docker.
func TestBrowserWorkshop(t *testing.T) {
	needEngine(t)
	began := time.Now()
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--node-memory", "256")
	t.Cleanup(func() { endEverySession(t, srv.url) }) // the pool's spare sessions too; before the server stops
	// The browser first: the 30 s before the start are for joining, not for starting chromium.
	room := newChromium(t, srv.url)
	names := []string{"Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis"}
	const seats = 6
	people := make([]*page, len(names))
	for i := range people {
		people[i] = room.page()
	}
	instructor := room.page()

	const title = "Swarm in a morning"
	const window = 75 * time.Second // from the start to the end: under five minutes, so the warning shows at once
	startsAt := time.Now().Add(30 * time.Second).UTC()
	endsAt := startsAt.Add(window)
	ws := createWorkshop(t, srv.url, fmt.Sprintf(`{"title":%q,"template":"1-node","seats":%d,"starts_at":%q,"ends_at":%q}`,
		title, seats, startsAt.Format(time.RFC3339Nano), endsAt.Format(time.RFC3339Nano)))
	if ws.Code == "" || ws.InstructorToken == "" || !strings.HasSuffix(ws.JoinURL, "/w/"+ws.Code) ||
		!strings.HasSuffix(ws.InstructorURL, "/w/"+ws.ID+"/instructor#token="+ws.InstructorToken) {
		t.Fatalf("the workshop's links: %+v", ws)
	}
	// The second workshop, open from now for five minutes: less than that is left by the time anyone joins it.
	const title2 = "Extra time"
	ws2 := createWorkshop(t, srv.url, fmt.Sprintf(`{"title":%q,"template":"1-node","seats":2,"ends_at":%q}`,
		title2, time.Now().Add(5*time.Minute).UTC().Format(time.RFC3339Nano)))

	// Six join before the start and wait for it; the seventh is queued.
	joinByCode(people[0], ws.Code, names[0])
	for i, p := range people[1:] {
		joinByLink(p, ws.Code, names[i+1])
	}
	for i, p := range people {
		waitPlace(p, names[i])
	}
	joined := time.Now()
	for i, p := range people[:seats] {
		left := p.text(".workshop-page .countdown[role=timer]")
		if s := countdownSeconds(left); s <= 0 || s > 30 {
			t.Fatalf("%s's waiting view counts down %q, want at most 30 s to the start", names[i], left)
		}
	}
	if got := people[seats].text(".workshop-page .countdown"); !regexp.MustCompile(`^position\s+1$`).MatchString(got) {
		t.Fatalf("%s's page says %q, want position 1 in the queue", names[seats], got)
	}
	if time.Now().After(startsAt) {
		t.Fatalf("joining took %s: the workshop started before everyone had joined", joined.Sub(began).Round(time.Second))
	}
	t.Logf("everyone had joined %s before the start", time.Until(startsAt).Round(100*time.Millisecond))

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
	waitRows(instructor, rowsOf(names[:seats], "waiting")+", Dennis queued 1", 10*time.Second)

	// The start: the six seated attendees get a shell in node1, with the warning that the end is near; the
	// dashboard follows, with each one's last activity.
	sessions := map[string]string{} // attendee -> session, as their pages open them
	for i, p := range people[:seats] {
		sessions[names[i]] = enterSession(p, title, time.Until(startsAt)+90*time.Second)
	}
	t.Logf("the %d seated attendees have a prompt %s after the start", seats, time.Since(startsAt).Round(100*time.Millisecond))
	for i, p := range people[:seats] {
		waitEndWarning(p, names[i])
	}
	waitRows(instructor, rowsOf(names[:seats], "active")+", Dennis queued 1", 10*time.Second)
	for _, name := range names { // last activity is the last keystroke: nobody has typed yet
		if got := lastActivity(instructor, name); got != "" {
			t.Errorf("the dashboard's last activity of %s is %q before anyone typed", name, got)
		}
	}

	// A broadcast from the dashboard reaches every attendee's page, the queued one's too.
	const message = "Ten minutes for the first exercise"
	for _, p := range people {
		p.mark("broadcast", fmt.Sprintf(`[...document.querySelectorAll(".banner.broadcast, .messages li")].some(b => b.textContent.includes(%q))`, message))
	}
	instructor.do("type a broadcast", chromedp.Click(chromedp.CSS("#broadcast-text")), typeKeys(message))
	sent := time.Now()
	instructor.do("send the broadcast", chromedp.Click(chromedp.CSS(`form.broadcast button[type="submit"]`)))
	var slowest time.Duration
	var took []string
	for i, p := range people {
		late := p.marked("broadcast", 10*time.Second).Sub(sent)
		slowest = max(slowest, late)
		took = append(took, fmt.Sprintf("%s %dms", names[i], late.Milliseconds()))
	}
	// The target is 1 s; this fails only far beyond it (a timed assertion would make a flaky test).
	if slowest > 5*time.Second {
		t.Errorf("the broadcast took %s to reach the slowest page, want about 1 s", slowest.Round(time.Millisecond))
	}
	t.Logf("the broadcast reached every page within %s (target 1 s): %s", slowest.Round(time.Millisecond), strings.Join(took, ", "))

	// The instructor watches Grace's terminal, read only, while she types; what the instructor types into it
	// goes nowhere, and the view stays connected.
	grace := people[1]
	instructor.do("watch Grace's node1", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-attendee=%q] button.node-chip`, rowID(instructor, "Grace")))))
	instructor.waitJS("the watch panel", `!!document.querySelector("aside.watch sandlot-terminal")`, 10*time.Second)
	instructor.waitJS("Grace's prompt in the watch panel", `/\[node1 [0-9.]+\] .*[#$] ?$/m.test(document.querySelector("aside.watch sandlot-terminal").text())`,
		20*time.Second)
	grace.pick("node1")
	grace.typeLine("echo watched-$((6*7))")
	grace.waitScreen("node1", 1, `(?m)^watched-42$`, 10*time.Second)
	watched := `document.querySelector("aside.watch sandlot-terminal").text()`
	instructor.waitJS("Grace's output in the watch panel", `/^watched-42$/m.test(`+watched+`)`, 5*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := lastActivity(instructor, "Grace")
		if regexp.MustCompile(`^(just now|\d+ s ago)$`).MatchString(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard's last activity of Grace after she typed is %q", got)
		}
	}
	instructor.do("type into the watched terminal", chromedp.Click(chromedp.CSS("aside.watch sandlot-terminal")),
		typeKeys("echo intruder-$((6*7))"+kb.Enter))
	grace.typeLine("echo after-$((6*7))")
	grace.waitScreen("node1", 1, `(?m)^after-42$`, 10*time.Second)
	instructor.waitJS("Grace's later output in the watch panel", `/^after-42$/m.test(`+watched+`)`, 5*time.Second)
	var seen string
	instructor.eval(watched, &seen)
	if s := grace.screen("node1", 1); strings.Contains(s, "intruder") || strings.Contains(seen, "intruder") {
		t.Errorf("what the instructor typed into the watched terminal reached Grace's shell:\n%s", s)
	}

	// Ending Ada from the dashboard (two clicks) ends her session, says so on her page, and lets Dennis in.
	end := chromedp.CSS(fmt.Sprintf(`tr[data-attendee=%q] button.danger`, rowID(instructor, "Ada")))
	instructor.do("end Ada's session", chromedp.Click(end), chromedp.Click(end))
	ended := time.Now()
	people[0].waitJS("Ada's page says the instructor ended her session",
		`document.querySelector(".ended .reason")?.dataset.reason === "admin"`, 10*time.Second)
	if got := people[0].text(".ended .reason"); !strings.Contains(got, "The instructor ended it") {
		t.Errorf("Ada's page says %q", got)
	}
	dennis := people[seats]
	dennis.waitJS("Dennis's page to leave the queue", `!document.querySelector(".workshop-page")?.innerText.includes("in the queue")`,
		10*time.Second)
	t.Logf("Dennis's page left the queue %s after Ada was ended", time.Since(ended).Round(time.Millisecond))
	sessions["Dennis"] = enterSession(dennis, title, 90*time.Second)

	// Linus ends his own session from his page; the dashboard shows both ended.
	people[2].do("Linus ends his session", chromedp.Click(chromedp.CSS("#end")), chromedp.Click(chromedp.CSS("#end")))
	people[2].waitJS("Linus's page says he ended it", `document.querySelector(".ended .reason")?.dataset.reason === "deleted"`, 10*time.Second)
	waitRows(instructor, "Ada ended, Grace active, Linus ended, Barbara active, Ken active, Margaret active, Dennis active", 10*time.Second)

	// The end at ends_at is seen on every page still open, while the second workshop runs.
	stay := []int{1, 3, 4, 5, 6}
	for _, i := range stay {
		people[i].mark("end", `document.querySelector(".ended .reason")?.dataset.reason === "workshop_ended"`)
	}

	// Ada and Linus join the second workshop, open now: a session at once, and the five-minute warning.
	// "+30 min for everyone" on its dashboard moves the end of both sessions and of the training, and the
	// warning goes; "End workshop" then ends it on both pages.
	sessions2 := map[string]string{}
	for _, i := range []int{0, 2} {
		joinByLink(people[i], ws2.Code, names[i])
		sessions2[names[i]] = enterSession(people[i], title2, 90*time.Second)
		waitEndWarning(people[i], names[i])
	}
	instructor2 := room.page()
	instructor2.do("open the second dashboard", chromedp.Navigate(ws2.InstructorURL))
	waitRows(instructor2, "Ada active, Linus active", 10*time.Second)
	instructor2.do("+30 min for everyone", chromedp.Click(chromedp.CSS("#extend-all")))
	for _, i := range []int{0, 2} {
		p := people[i]
		p.waitJS(names[i]+"'s page to show 30 more minutes", `(() => {
			const mins = (s) => { const m = /(?:(\d+):)?(\d+):(\d\d)/.exec(s ?? ""); return m ? 60 * (+m[1] || 0) + +m[2] : -1; };
			return mins(document.querySelector("#training-left")?.innerText) >= 30 && mins(document.querySelector("#time-left")?.innerText) >= 30;
		})()`, 10*time.Second)
		p.waitJS(names[i]+"'s warning to go", `!document.querySelector("#workshop-ending")`, 5*time.Second)
	}
	instructor2.do("end the second workshop", chromedp.Click(chromedp.CSS("#end-all")), chromedp.Click(chromedp.CSS("#end-all-yes")))
	for _, i := range []int{0, 2} {
		people[i].waitJS(names[i]+"'s page to say the second workshop has ended",
			`document.querySelector(".ended .reason")?.dataset.reason === "workshop_ended"`, 10*time.Second)
	}
	waitRows(instructor2, "Ada ended, Linus ended", 10*time.Second)

	// The first workshop's end.
	if left := time.Until(endsAt); left < 5*time.Second {
		t.Fatalf("the steps before the end took too long: %s of the window was left, want the end to come after them", left)
	} else {
		t.Logf("the steps took %s of the %s window", window-left.Round(time.Second), window)
	}
	for _, i := range stay {
		late := people[i].marked("end", time.Until(endsAt)+20*time.Second).Sub(endsAt)
		t.Logf("%s's page said the workshop had ended %s after ends_at", names[i], late.Round(time.Millisecond))
		if late < 0 {
			t.Errorf("%s's page said the workshop had ended %s before ends_at", names[i], -late)
		}
		if got := people[i].text("#ended-title"); got != "The workshop has ended" {
			t.Errorf("%s's page says %q", names[i], got)
		}
	}
	waitRows(instructor, rowsOf(names, "ended"), 10*time.Second)
	var detail workshopDetail
	getAs(t, srv.url+"/api/v1/workshops/"+ws.ID, ws.InstructorToken, &detail)
	want := map[string]string{"Ada": "admin", "Linus": "deleted"}
	for _, a := range detail.Attendees {
		reason := want[a.Name]
		if reason == "" {
			reason = "workshop_ended"
		}
		if a.State != "ended" || a.EndReason != reason {
			t.Errorf("after the end %s is %s (%q), want ended (%s)", a.Name, a.State, a.EndReason, reason)
		}
	}
	if detail.State != "ended" {
		t.Errorf("after its end the workshop is %q", detail.State)
	}
	for _, id := range append(values(sessions), values(sessions2)...) {
		waitFor(t, 30*time.Second, "nothing of session "+id+" left in Docker", func() bool { return countLabelled(t, id) == 0 })
	}
	t.Logf("the whole workshop took %s", time.Since(began).Round(100*time.Millisecond))
}

// createWorkshop makes a workshop (body is the JSON of POST /api/v1/workshops) that is ended when the test ends,
// if it still runs then.
func createWorkshop(t testing.TB, url, body string) createdWorkshop {
	t.Helper()
	var ws createdWorkshop
	post(t, url+"/api/v1/workshops", admin, body, http.StatusCreated, &ws)
	t.Cleanup(func() { endWorkshop(t, url, ws) })
	return ws
}

// joinByCode types code into the landing page's "Join a workshop", then joins as name.
func joinByCode(p *page, code, name string) {
	p.t.Helper()
	p.do("open the landing page", chromedp.Navigate(p.url+"/"))
	// As a person may type it: lower case, with a dash.
	typed := strings.ToLower(code[:3] + "-" + code[3:])
	p.do(name+" types the code", chromedp.Click(chromedp.CSS("#join-code-input")), typeKeys(typed),
		chromedp.Click(chromedp.CSS("#join-code-go")))
	join(p, code, name)
}

// joinByLink opens the workshop's join link, then joins as name.
func joinByLink(p *page, code, name string) {
	p.t.Helper()
	p.do("open the join link", chromedp.Navigate(p.url+"/w/"+code))
	join(p, code, name)
}

// join gives name on the join page of code and presses Join.
func join(p *page, code, name string) {
	p.t.Helper()
	p.waitJS("the join page", fmt.Sprintf(`location.pathname === "/w/%s" && !!document.querySelector("#join-name")`, code),
		10*time.Second)
	p.do(name+" gives a name", chromedp.Click(chromedp.CSS("#join-name")), typeKeys(name),
		chromedp.Click(chromedp.CSS("#join")))
}

// waitPlace waits for an attendee's view before the start: the countdown, or the place in the queue.
func waitPlace(p *page, name string) {
	p.t.Helper()
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

// waitEndWarning waits for the warning of a workshop ending within five minutes: a banner in view that says so,
// and the workshop's clock in the colour of the warning.
func waitEndWarning(p *page, name string) {
	p.t.Helper()
	p.waitJS(name+"'s warning that the workshop ends soon", `(() => {
		const b = document.querySelector("#workshop-ending");
		const r = b?.getBoundingClientRect();
		return !!r && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && getComputedStyle(b).visibility === "visible" &&
			document.querySelector("#training-left")?.classList.contains("low");
	})()`, 10*time.Second)
	if got := p.text("#workshop-ending"); !regexp.MustCompile(`^The workshop ends in [1-5] minutes?: save what you want to keep\.$`).MatchString(got) {
		p.fatalf("%s's warning says %q", name, got)
	}
}

// mark records in the page the time (the page's clock, which is the host's) at which the JavaScript condition
// cond first holds, under name: checked at once and after each change of the document, so that the time is when
// the page showed it, not when the test looked. marked reads it.
func (p *page) mark(name, cond string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => {
		const marks = (window.sandlotMarks ??= {});
		const name = %q, cond = () => (%s);
		delete marks[name];
		if (cond()) { marks[name] = Date.now(); return true; }
		const o = new MutationObserver(() => { if (cond()) { marks[name] = Date.now(); o.disconnect(); } });
		o.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
		return true;
	})()`, name, cond), nil)
}

// marked waits until the page has recorded the mark name (see mark) and returns its time.
func (p *page) marked(name string, within time.Duration) time.Time {
	p.t.Helper()
	p.waitJS("the page to show "+name, fmt.Sprintf(`!!window.sandlotMarks?.[%q]`, name), within)
	var ms int64
	p.eval(fmt.Sprintf(`window.sandlotMarks[%q]`, name), &ms)
	return time.UnixMilli(ms)
}

// rowsOf is the dashboard's rows (see rows) of attendees all in one state.
func rowsOf(names []string, state string) string {
	rows := make([]string, len(names))
	for i, n := range names {
		rows[i] = n + " " + state
	}
	return strings.Join(rows, ", ")
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

// lastActivity is what the dashboard's column "Last activity" says of the attendee called name.
func lastActivity(p *page, name string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`(() => {
		const table = document.querySelector("table.attendees");
		const col = [...table.querySelectorAll("thead th")].findIndex(th => th.innerText.trim() === "Last activity");
		const row = [...table.querySelectorAll("tr[data-attendee]")].find(r => r.querySelector("th").innerText.trim() === %q);
		return row?.children[col]?.innerText.trim() ?? "";
	})()`, name), &s)
	return s
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

// endEverySession ends every session the server has, pooled ones included, and waits until nothing of them is
// left in Docker (other servers' sessions on the same engine are left alone). It runs until the server holds none
// for a moment: the warm pool may be making one as the workshops end.
func endEverySession(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for quiet := 0; quiet < 3; {
		var list struct {
			Sessions []struct {
				ID string `json:"id"`
			} `json:"sessions"`
		}
		getAs(t, url+"/api/v1/sessions", admin, &list)
		if len(list.Sessions) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		for _, s := range list.Sessions {
			deleteSession(t, url, s.ID)
		}
		if time.Now().After(deadline) {
			t.Errorf("the server still has sessions after 90 s: %+v", list.Sessions)
			return
		}
		time.Sleep(time.Second)
	}
}

// getAs reads the JSON answer of a GET with token, which must answer 200, into out.
func getAs(t testing.TB, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
