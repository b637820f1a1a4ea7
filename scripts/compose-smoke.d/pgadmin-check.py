"""pgAdmin as docker-compose.yml configures it, checked through its HTTP API (scripts/compose-smoke).

usage: pgadmin-check.py BASE_URL SERVER_NAME

Desktop mode: the first page is the app, not a login form; the server from servers.json is
listed in its group; connecting to it succeeds without a password (the pgpass file written from
POSTGRES_PASSWORD). Exit 0 when all hold.
"""

import http.cookiejar
import json
import re
import sys
import urllib.error
import urllib.request


def main(base, name):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(path, data=None, headers=None):
        req = urllib.request.Request(base + path, data=data, headers=headers or {})
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status, resp.geturl(), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, path, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            return 0, path, str(e)

    status, url, page = get("/")
    if status != 200 or "/login" in url:
        return f"GET / answered {status} at {url} (a login page?)"
    if 'name="password"' in page and "login" in url:
        return "a login form is shown"
    # The page's script /browser/js/utils.js carries the session's CSRF token.
    status, _, script = get("/browser/js/utils.js")
    token = re.search(r"pgAdmin\['csrf_token'\]\s*=\s*'([^']+)'", script)
    if not token:
        return f"no CSRF token in /browser/js/utils.js (status {status})"
    headers = {"X-pgA-CSRFToken": token.group(1), "Content-Type": "application/json"}
    status, _, body = get("/browser/server_group/nodes/", headers=headers)
    groups = json.loads(body).get("data") or []
    for group in groups:
        status, _, body = get(f"/browser/server/nodes/{group['_id']}/", headers=headers)
        answer = json.loads(body)
        if not answer.get("success", 1) or status != 200:
            return f"server list answered {status}: {body[:300]}"
        for server in answer.get("data") or answer.get("result") or []:
            if server.get("label") != name:
                continue
            print(f"  .. pgAdmin lists '{name}' in group '{group.get('label')}'")
            path = f"/browser/server/connect/{group['_id']}/{server['_id']}"
            status, _, body = get(path, data=b"{}", headers=headers)
            if status != 200:
                return f"connect answered {status}: {body[:300]}"
            answer = json.loads(body)
            if not answer.get("data", {}).get("connected"):
                return f"not connected: {body[:300]}"
            print("  .. connected without a password prompt")
            return None
    return f"server '{name}' not listed in {[g.get('label') for g in groups]}"


if __name__ == "__main__":
    problem = main(sys.argv[1].rstrip("/"), sys.argv[2])
    if problem:
        print(f"  .. {problem}")
        sys.exit(1)
