#!/usr/bin/env python3
"""Run an installed QuickBooks connector with Intuit's hostnames rebound to a local qbo-sim.

The connectors hard-code `https://quickbooks.api.intuit.com`, the sandbox host and
`https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer` and take no base URL from their
config. Instead of editing them, this rebinds those hosts in memory, the way a hosts-file entry
plus a trusted certificate would: `requests`' transport (`HTTPAdapter.send`, which every
`requests` session goes through, `requests-oauthlib` and `requests-cache` ones included) sends
any request for an Intuit API host to the simulator, keeping path and query. Everything above the
transport (URLs, OAuth checks for https, retries, paging) runs unchanged.

Usage:
    python intuit_rebind.py --base-url http://127.0.0.1:PORT -- CONSOLE_SCRIPT [ARGS...]

CONSOLE_SCRIPT is the connector's installed command (`tap-quickbooks`, `source-quickbooks`); its
entry point is looked up in the current environment and called with ARGS as `sys.argv[1:]`.
Importing this module and calling `rebind(base_url)` works too.
"""

import argparse
import importlib.metadata
import sys
from urllib.parse import urlsplit, urlunsplit

#: Intuit hosts the connectors call (API, sandbox API, OAuth token endpoint, discovery, consent).
INTUIT_HOSTS = frozenset(
    {
        "quickbooks.api.intuit.com",
        "sandbox-quickbooks.api.intuit.com",
        "oauth.platform.intuit.com",
        "developer.api.intuit.com",
        "developer.intuit.com",
        "appcenter.intuit.com",
    }
)

_installed = None


def rebind(base_url):
    """Send every `requests` call for an Intuit host to `base_url` (scheme://host:port)."""
    global _installed
    import requests.adapters

    target = urlsplit(base_url)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise ValueError(f"not a base URL: {base_url!r}")
    if _installed is None:
        _installed = requests.adapters.HTTPAdapter.send

    original = _installed

    def send(self, request, *args, **kwargs):
        url = urlsplit(request.url)
        if url.hostname in INTUIT_HOSTS:
            request.url = urlunsplit((target.scheme, target.netloc, url.path, url.query, url.fragment))
            # A Host header set by a caller would still name Intuit; the simulator ignores it,
            # but keep the request self-consistent.
            if "Host" in request.headers:
                request.headers["Host"] = target.netloc
        return original(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send


def console_script(name):
    """The callable behind an installed console script."""
    for ep in importlib.metadata.entry_points(group="console_scripts"):
        if ep.name == name:
            return ep.load()
    raise SystemExit(f"no console script {name!r} in this environment")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("missing the connector command")
    rebind(args.base_url)
    entry = console_script(command[0])
    sys.argv = command
    result = entry()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
