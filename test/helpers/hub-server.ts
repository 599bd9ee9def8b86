/**
 * A Hugging Face Hub stand-in on 127.0.0.1 for tests: serves repos (fixture checkpoints and
 * pushed ones) through the download endpoints, and accepts uploads through the endpoints
 * @huggingface/hub uses (repo creation, preupload, LFS batch + PUT, ndjson commit).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";

export const TOKEN = "hf_testtokenThatMustNeverBePrinted";

interface Repo {
  private: boolean;
  commits: Map<string, Map<string, Buffer>>;
  refs: Map<string, string>;
}

const isLfs = (name: string, size: number) => /\.(safetensors|bin|onnx|data)$/.test(name) || size >= 10 * 2 ** 20;
const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Buffer) => crypto.createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

export class FakeHub {
  readonly repos = new Map<string, Repo>();
  readonly lfs = new Map<string, Buffer>();
  /** Requests seen, as "METHOD /path". */
  readonly requests: string[] = [];
  /** Range headers received. */
  readonly ranges: string[] = [];
  /** Files whose GET body is tampered with (to test corruption detection). */
  readonly corrupt = new Set<string>();
  private server!: http.Server;
  url = "";
  private counter = 0;

  addFolder(id: string, dir: string, opts: { private?: boolean; branch?: string } = {}): string {
    const files = new Map<string, Buffer>();
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files.set(path.relative(dir, p).split(path.sep).join("/"), fs.readFileSync(p));
      }
    };
    walk(dir);
    return this.addCommit(id, files, opts.branch ?? "main", opts.private);
  }

  addCommit(id: string, files: Map<string, Buffer>, branch = "main", isPrivate = false): string {
    const repo = this.repos.get(id) ?? { private: isPrivate, commits: new Map(), refs: new Map() };
    this.repos.set(id, repo);
    const sha = crypto.createHash("sha1").update(`${id}:${branch}:${++this.counter}`).digest("hex");
    repo.commits.set(sha, files);
    repo.refs.set(branch, sha);
    return sha;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        try {
          this.handle(req, Buffer.concat(chunks), res);
        } catch (e) {
          res.writeHead(500).end(String(e));
        }
      });
    });
    // Idle connections stay open longer than any test waits between requests: with Node's 5 s, a
    // client could reuse a socket the server was closing at that moment ("fetch failed").
    this.server.keepAliveTimeout = 600_000;
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  private authorized(req: http.IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${TOKEN}`;
  }

  private resolve(id: string, rev: string): { repo?: Repo; sha?: string; files?: Map<string, Buffer> } {
    const repo = this.repos.get(id);
    if (!repo) return {};
    const sha = repo.refs.get(rev) ?? (repo.commits.has(rev) ? rev : undefined);
    return { repo, sha, files: sha ? repo.commits.get(sha) : undefined };
  }

  private handle(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): unknown {
    const url = new URL(req.url!, this.url);
    const p = decodeURIComponent(url.pathname);
    this.requests.push(`${req.method} ${p}`);
    const json = (status: number, v: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(v));
    let m: RegExpMatchArray | null;

    if ((m = p.match(/^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/)) && req.method === "GET") {
      const { repo, sha, files } = this.resolve(m[1]!, m[2]!);
      // As huggingface.co: a missing or private repo is 401 RepoNotFound without a token, 404 with one.
      if (!repo || (repo.private && !this.authorized(req))) return json(this.authorized(req) ? 404 : 401, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
      if (!sha || !files) return json(404, { error: "Revision not found" }, { "x-error-code": "RevisionNotFound" });
      return json(200, { id: m[1], sha, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) });
    }
    if ((m = p.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/)) && (req.method === "GET" || req.method === "HEAD")) {
      const { repo, sha, files } = this.resolve(m[1]!, m[2]!);
      // As huggingface.co: a missing or private repo is 401 RepoNotFound without a token, 404 with one.
      if (!repo || (repo.private && !this.authorized(req))) return json(this.authorized(req) ? 404 : 401, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
      if (!files) return json(404, { error: "Revision not found" }, { "x-error-code": "RevisionNotFound" });
      const data = files.get(m[3]!);
      if (!data) return json(404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      const headers: Record<string, string> = { "x-repo-commit": sha!, "accept-ranges": "bytes" };
      if (isLfs(m[3]!, data.length)) {
        headers["x-linked-etag"] = `"${sha256(data)}"`;
        headers["x-linked-size"] = String(data.length);
        headers["etag"] = `"${gitSha1(data)}"`;
      } else {
        headers["etag"] = `"${gitSha1(data)}"`;
      }
      if (req.method === "HEAD") return res.writeHead(200, { ...headers, "content-length": String(data.length) }).end();
      let payload = this.corrupt.has(m[3]!) ? Buffer.from(data).fill(7, 0, 64) : data;
      if (req.headers.range) this.ranges.push(req.headers.range);
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      if (range) {
        payload = payload.subarray(Number(range[1]));
        return res.writeHead(206, { ...headers, "content-length": String(payload.length) }).end(payload);
      }
      return res.writeHead(200, { ...headers, "content-length": String(payload.length) }).end(payload);
    }
    if (p === "/api/whoami-v2") return this.authorized(req) ? json(200, { name: "tester", type: "user" }) : json(401, { error: "Invalid token" });
    if (p === "/api/repos/create" && req.method === "POST") {
      if (!this.authorized(req)) return json(401, { error: "Invalid token" });
      const b = JSON.parse(body.toString()) as { name: string; organization?: string; private?: boolean; visibility?: string };
      const id = `${b.organization}/${b.name}`;
      if (this.repos.has(id)) return json(409, { error: "You already created this model repo", url: `${this.url}/${id}` });
      this.repos.set(id, { private: b.private === true || b.visibility === "private", commits: new Map(), refs: new Map() });
      return json(200, { url: `${this.url}/${id}` });
    }
    if ((m = p.match(/^\/api\/models\/([^/]+\/[^/]+)\/preupload\/(.+)$/)) && req.method === "POST") {
      if (!this.authorized(req)) return json(401, { error: "Invalid token" });
      const b = JSON.parse(body.toString()) as { files: { path: string; size: number }[] };
      return json(200, { files: b.files.map((f) => ({ path: f.path, uploadMode: isLfs(f.path, f.size) ? "lfs" : "regular", shouldIgnore: false })) });
    }
    if ((m = p.match(/^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/)) && req.method === "POST") {
      if (!this.authorized(req)) return json(401, { message: "Invalid token" });
      const b = JSON.parse(body.toString()) as { objects: { oid: string; size: number }[] };
      return json(200, {
        transfer: "basic",
        objects: b.objects.map((o) => ({
          oid: o.oid,
          size: o.size,
          ...(this.lfs.has(o.oid) ? {} : { actions: { upload: { href: `${this.url}/lfs-upload/${o.oid}`, header: {} } } }),
        })),
      });
    }
    if ((m = p.match(/^\/lfs-upload\/([0-9a-f]{64})$/)) && req.method === "PUT") {
      if (sha256(body) !== m[1]) return json(400, { message: "sha256 mismatch" });
      this.lfs.set(m[1]!, body);
      return res.writeHead(200, { etag: `"${m[1]}"` }).end();
    }
    if ((m = p.match(/^\/api\/models\/([^/]+\/[^/]+)\/commit\/(.+)$/)) && req.method === "POST") {
      if (!this.authorized(req)) return json(401, { error: "Invalid token" });
      const id = m[1]!;
      const branch = m[2]!;
      const repo = this.repos.get(id);
      if (!repo) return json(404, { error: "Repository not found" });
      const parent = repo.refs.get(branch);
      const files = new Map(parent ? repo.commits.get(parent) : []);
      for (const line of body.toString().split("\n").filter(Boolean)) {
        const { key, value } = JSON.parse(line) as { key: string; value: Record<string, string> };
        if (key === "file") files.set(value["path"]!, Buffer.from(value["content"]!, "base64"));
        if (key === "lfsFile") {
          const blob = this.lfs.get(value["oid"]!);
          if (!blob) return json(400, { error: `LFS object ${value["oid"]} was not uploaded` });
          files.set(value["path"]!, blob);
        }
      }
      const sha = this.addCommit(id, files, branch, repo.private);
      return json(200, { commitOid: sha, commitUrl: `${this.url}/${id}/commit/${sha}` });
    }
    json(404, { error: `no route ${req.method} ${p}` });
  }
}
