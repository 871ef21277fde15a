package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandlot/sandlot/session/workshop"
)

const workshopUsage = `usage: sandlot workshop <create|list|show|broadcast|end> [flags] [args]

  create --title T --template swarm-1m1w --seats 30 [--starts-at RFC3339 --ends-at RFC3339 | --duration 2h]
         [--images nginx:alpine,redis:7]
                             make a workshop: prints its code, join link and instructor link
  list                       every workshop: code, title, seats, window
  show ID                    a workshop's attendees: name, state, session, time left
  broadcast ID TEXT          send a message to every attendee's page
  end ID                     end the workshop and every session in it

flags (also SANDLOT_SERVER, SANDLOT_ADMIN_TOKEN):
`

// workshopCommand runs workshops on a running server through its API, with the admin token.
func workshopCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newClientFlags("workshop", workshopUsage, "create, list, show, broadcast or end", stderr)
	title := fs.String("title", "", "create: the workshop's title")
	template := fs.String("template", "", "create: the template every attendee gets (see GET /api/v1/templates)")
	seats := fs.Int("seats", 0, "create: how many attendees have sessions at once (1 to 500; the rest queue)")
	startsAt := fs.String("starts-at", "", "create: when sessions start (RFC 3339); attendees wait until then")
	endsAt := fs.String("ends-at", "", "create: when every session ends (RFC 3339)")
	duration := fs.Duration("duration", 0, "create: each attendee's session, without a window")
	imgs := fs.String("images", "", "create: images pulled into every attendee's nodes, comma-separated (put into the image cache now)")
	verb, c, err := fs.parse(args, getenv)
	if err != nil {
		return err
	}
	want := map[string]int{"create": 0, "list": 0, "show": 1, "broadcast": 2, "end": 1}
	n, ok := want[verb]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown workshop command %q", verb)
	}
	if fs.NArg() != n {
		return fmt.Errorf("workshop %s takes %d arguments, not %d (see sandlot workshop -h)", verb, n, fs.NArg())
	}
	id := fs.Arg(0)
	switch verb {
	case "create":
		req := map[string]any{"title": *title, "template": *template, "seats": *seats}
		if *duration > 0 {
			req["duration"] = duration.String()
		}
		if *imgs != "" {
			req["images"] = strings.Split(*imgs, ",")
		}
		for key, v := range map[string]string{"starts_at": *startsAt, "ends_at": *endsAt} {
			if v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fmt.Errorf("--%s %q: not an RFC 3339 time (like 2026-03-01T09:00:00Z)", strings.ReplaceAll(key, "_", "-"), v)
			}
			req[key] = t
		}
		var out struct {
			workshop.Workshop
			JoinURL       string `json:"join_url"`
			InstructorURL string `json:"instructor_url"`
		}
		if err := c.json(ctx, "POST", "/api/v1/workshops", req, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "workshop %s: %s\ncode:       %s\njoin:       %s\ninstructor: %s\n", out.ID, out.Title,
			out.Code, out.JoinURL, out.InstructorURL)
		return nil
	case "list":
		var out struct{ Workshops []workshop.Workshop }
		if err := c.json(ctx, "GET", "/api/v1/workshops", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCODE\tTITLE\tSEATS\tSTATE\tWINDOW")
		for _, w := range out.Workshops {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", w.ID, w.Code, w.Title, w.Seats, workshopState(w), window(w))
		}
		return tw.Flush()
	case "show":
		var d workshop.Detail
		if err := c.json(ctx, "GET", "/api/v1/workshops/"+url.PathEscape(id), nil, &d); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (code %s, %d seats, %s, %s)\n", d.Title, d.Code, d.Seats, workshopState(d.Workshop), window(d.Workshop))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tSESSION\tNODES\tTIME LEFT")
		for _, a := range d.Attendees {
			state, left := string(a.State), "-"
			if a.State == workshop.Queued {
				state = fmt.Sprintf("queued (%d)", a.Position)
			}
			if a.ExpiresAt != nil {
				left = time.Until(*a.ExpiresAt).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", a.Name, state, cmp.Or(a.SessionID, "-"), len(a.Nodes), left)
		}
		return tw.Flush()
	case "broadcast":
		var m workshop.Message
		if err := c.json(ctx, "POST", "/api/v1/workshops/"+url.PathEscape(id)+"/broadcast", map[string]string{"text": fs.Arg(1)}, &m); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sent at %s\n", m.At.Local().Format(time.TimeOnly))
		return nil
	default: // end
		var d workshop.Detail
		if err := c.json(ctx, "POST", "/api/v1/workshops/"+url.PathEscape(id)+"/end", map[string]string{}, &d); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ended %s: %d attendees\n", d.Title, len(d.Attendees))
		return nil
	}
}

func workshopState(w workshop.Workshop) string {
	if w.Locked && w.State == workshop.StateOpen {
		return "locked"
	}
	return string(w.State)
}

func window(w workshop.Workshop) string {
	switch {
	case w.StartsAt != nil && w.EndsAt != nil:
		return w.StartsAt.Local().Format(time.DateTime) + " to " + w.EndsAt.Local().Format(time.TimeOnly)
	case w.EndsAt != nil:
		return "until " + w.EndsAt.Local().Format(time.DateTime)
	case w.Duration != "":
		return w.Duration + " each"
	}
	return "-"
}
