package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/sandlot/sandlot/images"
	"github.com/sandlot/sandlot/session/templates"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/session/netfault"
	"github.com/sandlot/sandlot/session/workshop"
)

// The OpenAPI document lists exactly the routes the server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadAPIDoc(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	a := newAPI(nil, labproxy.New(nil, labproxy.Config{}, slog.Default()), Config{}, slog.Default())
	for _, r := range a.routes() {
		served = append(served, r.method+" "+r.pattern)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("openapi.json and routes.go differ:\ndocumented:\n%s\nserved:\n%s",
			strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
}

// openAPIBodies maps each JSON body the document describes to the Go type its handler encodes or decodes: answers
// as "METHOD path status", request bodies as "METHOD path". Every error answer (status 400 and up) is errorBody,
// the only thing fail and failWith write. A nil type is a body not checked.
func openAPIBodies() (answers, requests map[string]any) {
	// What the handlers answer as maps, with the same keys.
	type (
		sessionList struct {
			Sessions []session.Session `json:"sessions"`
		}
		templateList struct {
			Templates []templates.Template `json:"templates"`
		}
		filesWritten struct {
			Files []fileWritten `json:"files"`
		}
		status struct {
			Status string `json:"status"`
		}
		imageList struct {
			Images []images.Image `json:"images"`
		}
		importResult struct {
			Images []string `json:"images"`
		}
		workshopList struct {
			Workshops []workshopView `json:"workshops"`
		}
	)
	const ws = "/api/v1/workshops/{id}"
	const s, n = "/api/v1/sessions/{id}", "/api/v1/sessions/{id}/instances/{name}"
	answers = map[string]any{
		"POST /api/v1/sessions 201":            sessionView{},
		"POST /api/v1/try 201":                 tryResponse{},
		"GET /api/v1/sessions 200":             sessionList{},
		"GET " + s + " 200":                    sessionView{},
		"DELETE " + s + " 200":                 sessionView{},
		"POST " + s + "/extend 200":            sessionView{},
		"POST " + s + "/setup 200":             sessionView{},
		"POST " + s + "/viewer 201":            viewerLink{},
		"GET " + s + "/network 200":            networkResponse{},
		"PUT " + s + "/network 200":            networkResponse{},
		"POST " + s + "/instances 201":         session.Instance{},
		"POST " + n + "/start 200":             session.Instance{},
		"POST " + n + "/stop 200":              session.Instance{},
		"POST " + n + "/restart 200":           session.Instance{},
		"POST " + n + "/exec 200":              execResponse{},
		"POST " + n + "/files 201":             filesWritten{},
		"PUT " + n + "/files 200":              fileWritten{},
		"GET " + n + "/tree 200":               treeResponse{},
		"POST " + n + "/ports/{port}/link 201": labLink{},
		"GET /api/v1/templates 200":            templateList{},
		"GET /api/v1/images 200":               imageList{},
		"POST /api/v1/images/import 200":       importResult{},
		"GET /api/v1/openapi.json 200":         nil, // this document
		"POST /api/v1/workshops 201":           createdWorkshop{},
		"GET /api/v1/workshops 200":            workshopList{},
		"GET " + ws + " 200":                   workshop.Detail{},
		"POST " + ws + "/lock 200":             workshop.Workshop{},
		"POST " + ws + "/demo 201":             workshop.Demo{},
		"POST " + ws + "/seats 200":            workshop.Workshop{},
		"POST " + ws + "/broadcast 200":        workshop.Message{},
		"POST " + ws + "/extend 200":           workshop.Detail{},
		"POST " + ws + "/end 200":              workshop.Detail{},
		"GET /api/v1/join/{code} 200":          workshop.Public{},
		"POST /api/v1/join/{code} 201":         joined{},
		"GET /api/v1/attendee 200":             workshop.AttendeeView{},
		"GET /healthz 200":                     status{},
		"GET /readyz 200":                      status{},
	}
	requests = map[string]any{
		"POST /api/v1/sessions":            createSessionRequest{},
		"POST /api/v1/try":                 tryRequest{},
		"POST " + s + "/extend":            extendRequest{},
		"POST " + s + "/setup":             setupRequest{},
		"PUT " + s + "/network":            netfault.Document{},
		"POST " + s + "/instances":         addInstanceRequest{},
		"POST " + n + "/exec":              execRequest{},
		"POST " + n + "/ports/{port}/link": linkRequest{},
		"POST /api/v1/images/preload":      preloadRequest{},
		"POST /api/v1/workshops":           createWorkshopRequest{},
		"POST " + ws + "/lock":             lockRequest{},
		"POST " + ws + "/seats":            seatsRequest{},
		"POST " + ws + "/broadcast":        broadcastRequest{},
		"POST " + ws + "/extend":           workshopExtendRequest{},
		"POST " + ws + "/end":              workshopEndRequest{},
		"POST /api/v1/join/{code}":         joinRequest{},
	}
	return answers, requests
}

// openAPIEnums are the values of the strings the document closes with an enum: a named string type's constants,
// or, for a plain string field, the values its code sets. A documented enum with no entry here is an error.
var openAPIEnums = map[any][]string{
	reflect.TypeFor[session.State]():          {string(session.StateStarting), string(session.StateActive), string(session.StateEnded), string(session.StatePooled)},
	reflect.TypeFor[session.EndReason]():      {string(session.EndExpired), string(session.EndDeleted), string(session.EndIdle), string(session.EndError), string(session.EndAdmin), string(session.EndWorkshopEnded)},
	fieldOf[instance.FileEntry]("type"):       {"file", "dir", "symlink", "other"}, // instance.parseEntry
	fieldOf[execResponse]("encoding"):         {"text", "base64"},                  // exec
	reflect.TypeFor[workshop.State]():         {string(workshop.StateOpen), string(workshop.StateEnded)},
	reflect.TypeFor[workshop.AttendeeState](): {string(workshop.Waiting), string(workshop.Queued), string(workshop.Active), string(workshop.Ended)},
	fieldOf[workshop.Public]("state"):         {"open", "locked", "ended"}, // workshop.Lookup
}

// openAPIOpen are the named string types whose values the document leaves open (no enum): its description must
// name each value Sandlot sets.
var openAPIOpen = map[reflect.Type][]string{
	reflect.TypeFor[session.NodeStatus](): {string(session.NodeCreating), string(session.NodeRunning), "exited", string(session.NodeRemoved)},
}

// structField names a field of a struct type by its JSON name.
type structField struct {
	t    reflect.Type
	name string
}

func fieldOf[T any](name string) structField { return structField{reflect.TypeFor[T](), name} }

// Each JSON body the document describes has the JSON fields of the Go type that handler uses, with the same JSON
// types; in an answer, required exactly when the field is always sent (no omitempty). So a field added to a Go type
// without documenting it, or documented with the wrong type, fails here.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadAPIDoc(t)
	answers, requests := openAPIBodies()
	answerCheck, requestCheck := &schemaCheck{doc: doc}, &schemaCheck{doc: doc, request: true}
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				RequestBody *struct {
					Content map[string]struct {
						Schema map[string]any `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
				Responses map[string]map[string]any `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			route := strings.ToUpper(method) + " " + path
			if op.RequestBody != nil {
				if media, ok := op.RequestBody.Content["application/json"]; ok {
					seen[route] = true
					goType, ok := requests[route]
					if !ok {
						t.Errorf("%s: a JSON request body with no Go type in openAPIBodies", route)
					} else {
						requestCheck.compare(route+" request", media.Schema, reflect.TypeOf(goType), structField{})
					}
				}
			}
			for status, resp := range op.Responses {
				key := route + " " + status
				resp = answerCheck.response(resp)
				content, _ := resp["content"].(map[string]any)
				media, ok := content["application/json"].(map[string]any)
				if !ok {
					continue // no body, or not JSON
				}
				seen[key] = true
				goType, ok := answers[key]
				if code, _ := strconv.Atoi(status); code >= 400 {
					goType, ok = errorBody{}, true
				}
				switch {
				case !ok:
					t.Errorf("%s: a JSON answer with no Go type in openAPIBodies", key)
				case goType != nil:
					answerCheck.compare(key, schemaOf(t, key, media), reflect.TypeOf(goType), structField{})
				}
			}
		}
	}
	for _, table := range []map[string]any{answers, requests} {
		for key := range table {
			if !seen[key] {
				t.Errorf("openAPIBodies has %s, which the document does not describe as a JSON body", key)
			}
		}
	}
	for _, e := range append(answerCheck.errs, requestCheck.errs...) {
		t.Error(e)
	}
}

// The check itself catches what it should: a field the document lacks, one it has of the wrong type, a wrong
// required list, and the file types the web page once expected.
func TestOpenAPISchemaCheckFindsMismatches(t *testing.T) {
	doc := loadAPIDoc(t)
	type entry struct {
		Path    string    `json:"path"`
		Type    string    `json:"type"`
		Size    int64     `json:"size"`
		ModTime time.Time `json:"mtime"`
	}
	fileEntry := reflect.TypeFor[instance.FileEntry]()
	for _, tc := range []struct {
		name   string
		schema string
		goType reflect.Type
		want   string
	}{
		{"an undocumented field", `{"$ref":"#/components/schemas/FileWritten"}`,
			reflect.TypeFor[struct {
				fileWritten
				Mode int `json:"mode"`
			}](), "mode: the Go type has it"},
		{"a field documented with the wrong type", `{"type":"object","required":["path","size"],
			"properties":{"path":{"type":"string"},"size":{"type":"string"}}}`,
			reflect.TypeFor[fileWritten](), "size: documented as string, the Go type int64 encodes as integer"},
		{"an optional field documented as required", `{"type":"object","required":["id","state","created_at","expires_at","max_expires_at","max_instances","instances","client"],
			"properties":` + string(mustJSON(t, schemaAt(t, doc, "Session")["properties"])) + `}`,
			reflect.TypeFor[session.Session](), "required is ["},
		{"a time documented as a plain string", `{"type":"object","required":["path","type","size","mtime"],
			"properties":{"path":{"type":"string"},"type":{"type":"string","enum":["file","dir","symlink","other"]},"size":{"type":"integer"},"mtime":{"type":"string"}}}`,
			fileEntry, "mtime: documented as string (format \"\"), the Go type time.Time encodes as string (format date-time)"},
		{"the file types the page expected", `{"type":"object","required":["path","type","size","mtime"],
			"properties":{"path":{"type":"string"},"type":{"type":"string","enum":["d","f","l"]},"size":{"type":"integer"},"mtime":{"type":"string","format":"date-time"}}}`,
			fileEntry, `type: documented as one of [d f l], the Go code sends [dir file other symlink]`},
		{"an enum on a string of unknown values", `{"$ref":"#/components/schemas/FileEntry"}`,
			reflect.TypeFor[entry](), "type: an enum, but openAPIEnums has no values for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var schema map[string]any
			if err := json.Unmarshal([]byte(tc.schema), &schema); err != nil {
				t.Fatal(err)
			}
			c := &schemaCheck{doc: doc}
			c.compare(tc.name, schema, tc.goType, structField{})
			if !slices.ContainsFunc(c.errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Fatalf("want an error with %q, got %q", tc.want, c.errs)
			}
		})
	}
}

// apiDoc is what these tests read of openapi.json.
type apiDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas   map[string]map[string]any `json:"schemas"`
		Responses map[string]map[string]any `json:"responses"`
	} `json:"components"`
}

func loadAPIDoc(t *testing.T) *apiDoc {
	t.Helper()
	var doc apiDoc
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

func schemaAt(t *testing.T, doc *apiDoc, name string) map[string]any {
	t.Helper()
	s, ok := doc.Components.Schemas[name]
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	return s
}

func schemaOf(t *testing.T, where string, media map[string]any) map[string]any {
	t.Helper()
	s, ok := media["schema"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no schema", where)
	}
	return s
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schemaCheck compares schemas of the document with Go types as encoding/json encodes them, and collects what
// differs.
type schemaCheck struct {
	doc     *apiDoc
	request bool // a request body: required is the handler's rule, not the Go type's; unknown fields are refused
	errs    []string
	checked map[string]bool // "$ref Go-type": a named schema is checked once against each Go type
}

func (c *schemaCheck) errorf(where, format string, args ...any) {
	c.errs = append(c.errs, where+": "+fmt.Sprintf(format, args...))
}

// response follows a response's $ref into components.responses.
func (c *schemaCheck) response(r map[string]any) map[string]any {
	if ref, ok := r["$ref"].(string); ok {
		if named, ok := c.doc.Components.Responses[strings.TrimPrefix(ref, "#/components/responses/")]; ok {
			return named
		}
	}
	return r
}

// resolve follows a schema's $ref and merges an allOf into one object schema.
func (c *schemaCheck) resolve(where string, s map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		named, ok := c.doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
		if !ok {
			c.errorf(where, "$ref %s names no schema", ref)
			return map[string]any{}
		}
		return c.resolve(where, named)
	}
	parts, ok := s["allOf"].([]any)
	if !ok {
		return s
	}
	merged := map[string]any{"type": "object"}
	props, required := map[string]any{}, []any{}
	for _, p := range parts {
		part, _ := p.(map[string]any)
		part = c.resolve(where, part)
		if part["type"] != "object" {
			c.errorf(where, "allOf of a %v, not an object", part["type"])
		}
		pp, _ := part["properties"].(map[string]any)
		for name, prop := range pp {
			if _, dup := props[name]; dup {
				c.errorf(where, "allOf has %s twice", name)
			}
			props[name] = prop
		}
		r, _ := part["required"].([]any)
		required = append(required, r...)
		if ap, ok := part["additionalProperties"]; ok {
			merged["additionalProperties"] = ap
		}
	}
	merged["properties"], merged["required"] = props, required
	return merged
}

var timeType = reflect.TypeFor[time.Time]()

// typeName names a Go type for an error message.
func typeName(t reflect.Type) string {
	if t.Name() == "" && t.Kind() == reflect.Struct {
		return "(a struct without a name)"
	}
	return t.String()
}

// compare checks schema s against Go type t at where (a path for the error messages); field is the struct field
// that has type t, if any.
func (c *schemaCheck) compare(where string, s map[string]any, t reflect.Type, field structField) {
	if ref, ok := s["$ref"].(string); ok {
		if c.checked == nil {
			c.checked = map[string]bool{}
		}
		if key := ref + " " + t.String(); c.checked[key] {
			return
		} else {
			c.checked[key] = true
		}
		where = strings.TrimPrefix(ref, "#/components/schemas/") // errors name the schema, not each route using it
	}
	s = c.resolve(where, s)
	if ex, ok := s["example"]; ok {
		c.example(where, s, t, ex)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typ, _ := s["type"].(string)
	format, _ := s["format"].(string)
	want := func(jsonType, jsonFormat string) {
		if typ != jsonType || format != jsonFormat {
			got, wanted := typ, jsonType
			if format != "" || jsonFormat != "" {
				got, wanted = fmt.Sprintf("%s (format %q)", typ, format), fmt.Sprintf("%s (format %s)", jsonType, jsonFormat)
			}
			c.errorf(where, "documented as %s, the Go type %s encodes as %s", got, t, wanted)
		}
	}
	switch {
	case t == timeType:
		want("string", "date-time")
	case t.Kind() == reflect.Struct:
		want("object", "")
		c.object(where, s, t)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		want("string", "byte")
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		want("array", "")
		if items, ok := s["items"].(map[string]any); ok {
			c.compare(where+"[]", items, t.Elem(), structField{})
		} else {
			c.errorf(where, "an array without items")
		}
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		want("object", "")
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			c.compare(where+"{}", ap, t.Elem(), structField{})
		} else {
			c.errorf(where, "a map without additionalProperties")
		}
	case t.Kind() == reflect.String:
		want("string", format) // any format: a string may say what it holds
		c.enum(where, s, t, field)
	case t.Kind() == reflect.Bool:
		want("boolean", "")
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want("integer", format)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		want("number", format)
	default:
		c.errorf(where, "the Go type %s has no JSON type this check knows", t)
	}
}

// object checks an object schema's properties and required list against the JSON fields of struct t.
func (c *schemaCheck) object(where string, s map[string]any, t reflect.Type) {
	props, _ := s["properties"].(map[string]any)
	var required []string
	if r, ok := s["required"].([]any); ok {
		for _, name := range r {
			required = append(required, fmt.Sprint(name))
		}
	}
	var always []string
	fields := jsonFields(t)
	for _, f := range fields {
		at := where + "." + f.name
		if !f.omitempty {
			always = append(always, f.name)
		}
		prop, ok := props[f.name].(map[string]any)
		if !ok {
			c.errorf(at, "the Go type has it (%s.%s), the document does not", typeName(f.owner), f.goName)
			continue
		}
		if f.t.Kind() == reflect.Pointer && !f.omitempty && !c.request {
			if n, _ := c.resolve(at, prop)["nullable"].(bool); !n {
				c.errorf(at, "a pointer without omitempty may be null: document it nullable")
			}
		}
		c.compare(at, prop, f.t, structField{f.owner, f.name})
	}
	for name := range props {
		if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.name == name }) {
			c.errorf(where+"."+name, "documented, but the Go type %s has no such JSON field", typeName(t))
		}
	}
	sort.Strings(required)
	sort.Strings(always)
	switch {
	case c.request:
		// Any field may be left out of a request (it decodes as zero); the handler says which it needs. What the
		// document requires must be a field, and unknown fields are refused (decode).
		for _, r := range required {
			if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.name == r }) {
				c.errorf(where, "requires %s, which is not a field", r)
			}
		}
		if s["additionalProperties"] != false {
			c.errorf(where, "decode refuses unknown fields: document additionalProperties: false")
		}
	case !slices.Equal(required, always):
		c.errorf(where, "required is %v; the Go type always sends %v (the fields without omitempty)", required, always)
	}
}

// enum checks the values a string may take: a documented enum must equal the values openAPIEnums has for the
// type (or the field), and an open type's description must name each of its values.
func (c *schemaCheck) enum(where string, s map[string]any, t reflect.Type, field structField) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	documented, closed := s["enum"].([]any)
	values, known := openAPIEnums[t]
	if !known && field.t != nil {
		values, known = openAPIEnums[field]
	}
	if open, ok := openAPIOpen[t]; ok {
		if closed {
			c.errorf(where, "an enum, but the values of %s are open (openAPIOpen)", t)
		}
		desc, _ := s["description"].(string)
		for _, v := range open {
			if !strings.Contains(desc, v) {
				c.errorf(where, "the description does not name %s, a value of %s", v, t)
			}
		}
		return
	}
	switch {
	case closed && !known:
		c.errorf(where, "an enum, but openAPIEnums has no values for %s (or this field of it)", t)
	case !closed && known:
		c.errorf(where, "the values of %s are known (%v): document them as an enum", t, values)
	case closed:
		var got []string
		for _, v := range documented {
			got = append(got, fmt.Sprint(v))
		}
		want := slices.Clone(values)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			c.errorf(where, "documented as one of %v, the Go code sends %v", got, want)
		}
	}
}

// example checks a schema's example: it decodes into the Go type without unknown fields, encodes back to itself
// (no field it always sends is missing), and every enum in it holds one of its values.
func (c *schemaCheck) example(where string, s map[string]any, t reflect.Type, ex any) {
	raw, err := json.Marshal(ex)
	if err != nil {
		c.errorf(where, "example: %v", err)
		return
	}
	v := reflect.New(t)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		c.errorf(where, "the example does not decode into %s: %v", t, err)
		return
	}
	back, _ := json.Marshal(v.Interface())
	var a, b any
	_ = json.Unmarshal(raw, &a)
	_ = json.Unmarshal(back, &b)
	if !reflect.DeepEqual(a, b) {
		c.errorf(where, "the example is not what %s encodes: %s, not %s", t, raw, back)
	}
	c.exampleEnums(where+" example", s, ex)
}

func (c *schemaCheck) exampleEnums(where string, s map[string]any, v any) {
	s = c.resolve(where, s)
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		c.errorf(where, "%v is not one of %v", v, enum)
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for name, val := range v {
			if p, ok := props[name].(map[string]any); ok {
				c.exampleEnums(where+"."+name, p, val)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, val := range v {
				c.exampleEnums(fmt.Sprintf("%s[%d]", where, i), items, val)
			}
		}
	}
}

// jsonField is a field as encoding/json sees it.
type jsonField struct {
	name      string
	t         reflect.Type
	omitempty bool
	owner     reflect.Type // the struct that declares it
	goName    string
}

// jsonFields are the fields encoding/json encodes of struct t: exported, not "-", embedded structs without a
// name flattened into t (a shallower field hides a deeper one of the same name).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	depth := map[string]int{}
	var walk func(t reflect.Type, level int)
	walk = func(t reflect.Type, level int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, hasTag := f.Tag.Lookup("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" && opts == "" {
				continue
			}
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, level+1)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if !hasTag || name == "" {
				name = f.Name
			}
			if d, seen := depth[name]; seen && d <= level {
				continue
			}
			out = slices.DeleteFunc(out, func(o jsonField) bool { return o.name == name })
			depth[name] = level
			optional := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
			if slices.Contains(strings.Split(opts, ","), "string") {
				ft = reflect.TypeFor[string]()
			}
			out = append(out, jsonField{name: name, t: ft, omitempty: optional, owner: t, goName: f.Name})
		}
	}
	walk(t, 0)
	return out
}
