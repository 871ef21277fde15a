// A test client with the wire behaviour of Play-with-Docker's JavaScript SDK (github.com/play-with-docker/sdk,
// src/index.ts and src/utils.ts as of its last commits). It was written from reading that SDK; none of its code
// is here. What it must reproduce, and does, is what goes over the wire and what a tutorial page relies on:
//
//   - every HTTP call is an XMLHttpRequest with withCredentials = true and the header X-Requested-With:
//     XMLHttpRequest (so a browser preflights each one); JSON bodies go with "Content-type: application/json",
//     FormData as it is; the answer is judged by its status alone (200 good, 409 "max instances", 403 "log in");
//   - newSession(terms, opts): POST {baseUrl}/ with the form body session-duration=90m; on 200 the answer's
//     hostname replaces the host of baseUrl (its scheme kept), then init;
//   - init(id): a WebSocket to ws(s)://{host}/sessions/{id}/ws/ carrying text frames {"name", "args"}, then
//     GET {baseUrl}/sessions/{id}; "instance terminal out" [name, data] is written to that instance's terminals
//     (kept in a buffer while it has none), "instance viewport resize" [cols, rows] resizes them, "instance new"
//     [name, ...] is an event for the page;
//   - per term (in page order, for those whose selector matches an element): POST .../instances with
//     {type, Hostname: "node<n>", ImageName, Envs, Networks} (absent ones as the SDK leaves them: type omitted,
//     ImageName "", Envs and Networks []); then an xterm in every element of the selector, whose keystrokes are
//     "instance terminal in" [name, data];
//   - code elements whose class contains the selector (a fenced block "```.term1" gives class="language-.term1")
//     type their innerText (or the base64 data-command-src of their parent) into the node when clicked;
//     elements with data-upload-term upload their data-upload-src ("name:base64") as FormData to
//     .../instances/{name}/uploads?url=...&path=...;
//   - exec(name, cmd): POST .../exec {"command": cmd}; setup(conf): POST .../setup; closeSession(): a synchronous
//     DELETE /sessions/{id} with "Content-type: application/json".
//
// Not reproduced: the SDK's socket is a ReconnectingWebSocket (the same URL opened again after a close, with a
// growing wait); this one is a plain WebSocket, so a test sees the close. The SDK's login window on a 403 is only
// the event "unauthorized" here, and its fit addon is left out (see tutorial.html).
//
// Besides, for the test that drives it, it keeps a log of what it sent and got (window.pwdWire).
(function () {
  "use strict";

  const wire = (window.pwdWire = []);

  function call(method, url, { headers = {}, body, sync = false } = {}, done) {
    const x = new XMLHttpRequest();
    x.open(method, url, !sync);
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    x.withCredentials = true;
    x.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    const isForm = body instanceof FormData;
    const payload = body !== null && typeof body === "object" && !isForm ? JSON.stringify(body) : body;
    const entry = { kind: "xhr", method, url, headers: { ...headers }, body: typeof payload === "string" ? payload : undefined };
    if (isForm) entry.form = [...body.keys()];
    wire.push(entry);
    x.onerror = (e) => {
      entry.status = 0;
      done(e || new Error("network error"));
    };
    x.onload = () => {
      entry.status = x.status;
      done(undefined, x);
    };
    x.send(payload);
  }

  class Client {
    constructor() {
      this.instances = {};
      this.pending = {}; // output of instances with no terminal yet
      this.listeners = {};
      this.terms = [];
      this.sessionId = null;
      this.opts = {};
      this.socket = null;
    }

    on(event, f) {
      (this.listeners[event] ||= []).push(f);
    }

    fire(event, ...args) {
      for (const f of this.listeners[event] || []) f(...args);
    }

    configure(opts) {
      this.opts = opts || {};
      this.opts.baseUrl ||= "https://labs.play-with-docker.com";
      this.opts.ports ||= [];
      this.opts.ImageName ||= "";
      this.opts.Envs ||= [];
      this.opts.Networks ||= [];
    }

    newSession(terms, opts, done = () => {}) {
      this.configure(opts);
      if (!terms || terms.length === 0) return;
      this.terms = terms;
      const form = encodeURIComponent("session-duration") + "=" + encodeURIComponent("90m");
      call("POST", this.opts.baseUrl + "/", { headers: { "Content-type": "application/x-www-form-urlencoded" }, body: form },
        (err, res) => {
          if (err) return done(err);
          if (res.status === 403) {
            this.fire("unauthorized");
            return done(new Error("log in first"));
          }
          if (res.status !== 200) return done(new Error("no session: " + res.status));
          this.fire("init");
          const answer = JSON.parse(res.responseText);
          this.opts.baseUrl = this.opts.baseUrl.split("/")[0] + "//" + answer.hostname;
          this.init(answer.session_id, this.opts, () => {
            for (const term of this.terms) {
              if (document.querySelector(term.selector)) this.terminal(term);
            }
            done();
          });
        });
    }

    init(id, opts, done = () => {}) {
      this.configure(opts);
      this.sessionId = id;
      const base = new URL(this.opts.baseUrl);
      const url = (base.protocol === "http:" ? "ws://" : "wss://") + base.host + "/sessions/" + id + "/ws/";
      this.socket = new WebSocket(url);
      this.socket.addEventListener("message", (ev) => {
        const m = JSON.parse(ev.data);
        wire.push({ kind: "in", name: m.name, args: m.args });
        this.dispatch(m.name, m.args || []);
      });
      this.socket.addEventListener("close", (ev) => wire.push({ kind: "close", code: ev.code }));
      call("GET", this.opts.baseUrl + "/sessions/" + id, {}, (err, res) => {
        if (err) return done(err);
        const s = JSON.parse(res.responseText);
        for (const [name, i] of Object.entries(s.instances || {})) {
          i.terms = [];
          this.instances[name] = i;
        }
        done();
      });
    }

    dispatch(name, args) {
      switch (name) {
        case "instance new":
          this.fire("instanceNew", args[0]);
          break;
        case "instance terminal out": {
          const [node, data] = args;
          const i = this.instances[node];
          if (i && i.terms && i.terms.length) i.terms.forEach((t) => t.write(data));
          else this.pending[node] = (this.pending[node] || "") + data;
          break;
        }
        case "instance viewport resize":
          for (const i of Object.values(this.instances)) (i.terms || []).forEach((t) => t.resize(args[0], args[1]));
          break;
      }
    }

    emit(name, ...args) {
      wire.push({ kind: "out", name, args });
      this.socket.send(JSON.stringify({ name, args }));
    }

    createInstance(conf, done) {
      conf.ImageName = conf.ImageName || this.opts.ImageName;
      conf.Envs = conf.Envs || this.opts.Envs;
      conf.Networks = conf.Networks || this.opts.Networks;
      call("POST", this.opts.baseUrl + "/sessions/" + this.sessionId + "/instances",
        { headers: { "Content-type": "application/json" }, body: conf }, (err, res) => {
          if (err) return done(err);
          if (res.status === 200) {
            const i = JSON.parse(res.responseText);
            i.terms = [];
            this.instances[i.name] = i;
            return done(undefined, i);
          }
          const e = new Error("instance: " + res.status);
          e.max = res.status === 409;
          done(e);
        });
    }

    terminal(term, done = () => {}) {
      const hostname = "node" + (this.terms.indexOf(term) + 1);
      this.createInstance({ type: term.type, Hostname: hostname, ImageName: term.ImageName, Envs: term.Envs, Networks: term.Networks },
        (err, i) => {
          if (err) return done(err.max ? new Error("Max instances reached") : new Error("Error creating instance"));
          this.attach(term, i.name);
          done(undefined, i);
        });
    }

    // attach is the SDK's createTerminal: an xterm in each element of the term's selector, and the page's
    // click-to-run blocks and uploads for it.
    attach(term, name) {
      const i = this.instances[name];
      for (const el of document.querySelectorAll(term.selector)) {
        const t = new window.Terminal({ cursorBlink: false });
        t.open(el);
        t.onData((d) => this.emit("instance terminal in", i.name, d));
        i.terms.push(t);
      }
      const client = this;
      for (const block of document.querySelectorAll('code[class*="' + term.selector + '"]')) {
        block.addEventListener("click", function () {
          const src = this.parentElement.getAttribute("data-command-src");
          client.emit("instance terminal in", i.name, src ? atob(src) : this.innerText);
        });
      }
      for (const el of document.querySelectorAll('[data-upload-term*="' + term.selector + '"]')) {
        const path = el.getAttribute("data-upload-path") || undefined;
        const url = el.getAttribute("data-source-url") || undefined;
        const src = el.getAttribute("data-upload-src") || undefined;
        let data, file;
        if (src) {
          const [n, b64] = src.split(":");
          file = n;
          data = new FormData();
          data.append("file", new Blob([atob(b64)], { type: "text/plain" }), n);
        }
        el.addEventListener("click", () => this.upload(i.name, { path, url, data, name: file }));
      }
      if (this.pending[name]) {
        i.terms.forEach((t) => t.write(this.pending[name]));
        this.pending[name] = "";
      }
      this.fire("instanceCreate", i);
      return i.terms;
    }

    upload(name, { name: file, data, path = "", url = "" }, done = () => {}) {
      if (data && url) return done(new Error("data or url, not both"));
      const q = new URLSearchParams({ url, path });
      this.fire("uploadStart");
      call("POST", this.opts.baseUrl + "/sessions/" + this.sessionId + "/instances/" + name + "/uploads?" + q, { body: data },
        (err, res) => {
          if (err) return done(err);
          const e = res.status === 200 ? undefined : new Error("upload: " + res.status);
          this.fire("uploadEnd", e, path + "/" + file, this.instances[name]);
          done(e);
        });
    }

    exec(name, cmd, done = () => {}) {
      call("POST", this.opts.baseUrl + "/sessions/" + this.sessionId + "/instances/" + name + "/exec",
        { headers: { "Content-type": "application/json" }, body: { command: cmd } },
        (err, res) => done(err || (res.status === 200 ? undefined : new Error("exec: " + res.status))));
    }

    setup(conf, done = () => {}) {
      call("POST", this.opts.baseUrl + "/sessions/" + this.sessionId + "/setup",
        { headers: { "Content-type": "application/json" }, body: conf },
        (err, res) => done(err || (res.status === 200 ? undefined : new Error("setup: " + res.status))));
    }

    closeSession(done = () => {}) {
      if (!this.sessionId) return;
      call("DELETE", this.opts.baseUrl + "/sessions/" + this.sessionId,
        { headers: { "Content-type": "application/json" }, sync: true },
        (err, res) => done(err || (res.status === 200 ? undefined : new Error("Error deleting session"))));
    }
  }

  window.PWD = Client;
  window.pwd = new Client();
})();
