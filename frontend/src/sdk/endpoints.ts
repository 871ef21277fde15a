// The calls the SDK makes, as a table: method, path, the OpenAPI schema of the request body and of the answer, and
// the status of success. The SDK's types come from this table (Schemas[answer] is the generated api-types.ts
// type), and test/sdk.test.ts checks every row against session/api/openapi.json, so the SDK can only ask for what
// the server documents and only expect what it answers.

import type * as T from "../api-types";

/** Schemas are the OpenAPI document's components.schemas the SDK uses, each by its own name (api-types.ts). */
export type Schemas = {
  SessionView: T.SessionView;
  CreateSessionRequest: T.CreateSessionRequest;
  ExtendRequest: T.ExtendRequest;
  SetupRequest: T.SetupRequest;
  AddInstanceRequest: T.AddInstanceRequest;
  Instance: T.Instance;
  ExecRequest: T.ExecRequest;
  ExecResult: T.ExecResult;
  FilesWritten: T.FilesWritten;
  FileWritten: T.FileWritten;
  LinkRequest: T.LinkRequest;
  LabLink: T.LabLink;
  ViewerLink: T.ViewerLink;
  TemplateList: T.TemplateList;
};

/** Body is a kind of request body the API takes that is not a JSON schema. */
type Body = "multipart" | "binary";

/** Endpoint is one call: request and answer name schemas ("" for none, or the body's kind). */
export interface Endpoint {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  readonly path: string;
  readonly request: keyof Schemas | Body | "";
  readonly answer: keyof Schemas | "";
  readonly status: number;
}

export const endpoints = {
  templates: { method: "GET", path: "/api/v1/templates", request: "", answer: "TemplateList", status: 200 },
  createSession: { method: "POST", path: "/api/v1/sessions", request: "CreateSessionRequest", answer: "SessionView", status: 201 },
  session: { method: "GET", path: "/api/v1/sessions/{id}", request: "", answer: "SessionView", status: 200 },
  end: { method: "DELETE", path: "/api/v1/sessions/{id}", request: "", answer: "SessionView", status: 200 },
  extend: { method: "POST", path: "/api/v1/sessions/{id}/extend", request: "ExtendRequest", answer: "SessionView", status: 200 },
  setup: { method: "POST", path: "/api/v1/sessions/{id}/setup", request: "SetupRequest", answer: "SessionView", status: 200 },
  addNode: { method: "POST", path: "/api/v1/sessions/{id}/instances", request: "AddInstanceRequest", answer: "Instance", status: 201 },
  removeNode: { method: "DELETE", path: "/api/v1/sessions/{id}/instances/{name}", request: "", answer: "", status: 204 },
  exec: { method: "POST", path: "/api/v1/sessions/{id}/instances/{name}/exec", request: "ExecRequest", answer: "ExecResult", status: 200 },
  restart: { method: "POST", path: "/api/v1/sessions/{id}/instances/{name}/restart", request: "", answer: "Instance", status: 200 },
  upload: { method: "POST", path: "/api/v1/sessions/{id}/instances/{name}/files", request: "multipart", answer: "FilesWritten", status: 201 },
  writeFile: { method: "PUT", path: "/api/v1/sessions/{id}/instances/{name}/files", request: "binary", answer: "FileWritten", status: 200 },
  readFile: { method: "GET", path: "/api/v1/sessions/{id}/instances/{name}/files", request: "", answer: "", status: 200 },
  portLink: { method: "POST", path: "/api/v1/sessions/{id}/instances/{name}/ports/{port}/link", request: "LinkRequest", answer: "LabLink", status: 201 },
  viewer: { method: "POST", path: "/api/v1/sessions/{id}/viewer", request: "", answer: "ViewerLink", status: 201 },
} as const satisfies Record<string, Endpoint>;

export type Endpoints = typeof endpoints;
export type Name = keyof Endpoints;

/** RequestOf is the JSON body endpoint n takes. */
export type RequestOf<N extends Name> = Endpoints[N]["request"] extends keyof Schemas ? Schemas[Endpoints[N]["request"]] : never;

/** AnswerOf is what endpoint n answers. */
export type AnswerOf<N extends Name> = Endpoints[N]["answer"] extends keyof Schemas ? Schemas[Endpoints[N]["answer"]] : void;
