import { request as httpRequest } from "node:http";

/** POST /v1/rollouts; resolves with every NDJSON line. `onLine` may return "close" to hang up. */
export function postRollout(url: string, body: unknown, onLine?: (line: any, all: any[]) => "close" | void, headers: Record<string, string> = {}): Promise<{ status: number; lines: any[]; contentType: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/v1/rollouts`, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      const lines: any[] = [];
      let buf = "";
      res.setEncoding("utf8");
      const done = () => resolve({ status: res.statusCode!, lines, contentType: String(res.headers["content-type"]) });
      res.on("data", (chunk: string) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          lines.push(line);
          if (onLine?.(line, lines) === "close") {
            res.destroy();
            req.destroy();
            done();
            return;
          }
        }
      });
      res.on("end", () => {
        if (buf.trim() !== "") lines.push(JSON.parse(buf));
        done();
      });
      res.on("error", () => done());
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}
