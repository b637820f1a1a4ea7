"""Small stdlib-only helpers the connector checks share: talk to qbo-sim directly (admin API,
token endpoint, query API) to set a run up and to read the ground truth a connector's output is
compared with, plus PASS/FAIL bookkeeping and connector launching.

Only the connectors' hosts are changed: they run through `intuit_rebind.py` next to this file.
"""

import base64
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REBIND = os.path.join(HERE, "intuit_rebind.py")

#: The simulated entities (all 26 with data) a connector must extract exactly: their stream name
#: (Singer's and Airbyte's) and whether they are list entities (inactive rows only show with
#: `Active IN (true, false)`).
ENTITIES = {
    "Account": ("accounts", True),
    "Bill": ("bills", False),
    "BillPayment": ("bill_payments", False),
    "Class": ("classes", True),
    "CreditMemo": ("credit_memos", False),
    "Customer": ("customers", True),
    "Department": ("departments", True),
    "Deposit": ("deposits", False),
    "Employee": ("employees", True),
    "Estimate": ("estimates", False),
    "Invoice": ("invoices", False),
    "Item": ("items", True),
    "JournalEntry": ("journal_entries", False),
    "Payment": ("payments", False),
    "PaymentMethod": ("payment_methods", True),
    "Purchase": ("purchases", False),
    "PurchaseOrder": ("purchase_orders", False),
    "RefundReceipt": ("refund_receipts", False),
    "SalesReceipt": ("sales_receipts", False),
    "TaxCode": ("tax_codes", True),
    "TaxRate": ("tax_rates", True),
    "Term": ("terms", True),
    "TimeActivity": ("time_activities", False),
    "Transfer": ("transfers", False),
    "Vendor": ("vendors", True),
    "VendorCredit": ("vendor_credits", False),
}

#: {stream: entity} of the simulated entities.
STREAMS = {stream: entity for entity, (stream, _) in ENTITIES.items()}


def where_all(entity):
    """` WHERE Active IN (true, false)` for list entities, else nothing."""
    return " WHERE Active IN (true, false)" if ENTITIES[entity][1] else ""


class Sim:
    """The simulator at `base` (`http://127.0.0.1:PORT`) with the app's client credentials."""

    def __init__(self, base, client_id, client_secret, realm_id):
        self.base = base.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.realm_id = realm_id

    def _request(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.base + path, method=method, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)

    def reconnect(self):
        """A brand-new refresh token, as if the user had connected the app again."""
        return self._request("POST", "/__admin/tokens/reconnect", data=b"")["refresh_token"]

    def refresh(self, refresh_token):
        """(access_token, new refresh_token) through the token endpoint, like any client."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}).encode()
        tok = self._request(
            "POST",
            "/oauth2/v1/tokens/bearer",
            data=body,
            headers={
                "Authorization": "Basic " + basic,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        return tok["access_token"], tok["refresh_token"]

    def query(self, access_token, statement):
        q = urllib.parse.urlencode({"query": statement, "minorversion": "75"})
        return self._request(
            "GET",
            f"/v3/company/{self.realm_id}/query?{q}",
            headers={"Authorization": "Bearer " + access_token, "Accept": "application/json"},
        )

    def all_rows(self, access_token, entity):
        """Every row of `entity` (inactive ones included), paging by 1000."""
        where = where_all(entity)
        rows, start = [], 1
        while True:
            v = self.query(access_token, f"SELECT * FROM {entity}{where} STARTPOSITION {start} MAXRESULTS 1000")
            page = v["QueryResponse"].get(entity, [])
            rows.extend(page)
            if len(page) < 1000:
                return rows
            start += len(page)

    def truth(self, access_token):
        """{entity: sorted ids} of the simulated entities."""
        return {e: sorted(r["Id"] for r in self.all_rows(access_token, e)) for e in ENTITIES}

    def earliest_day(self, access_token):
        """The UTC day before the earliest MetaData.LastUpdatedTime of the simulated data,
        as `YYYY-MM-DDT00:00:00Z` (a start date that covers everything)."""
        earliest = None
        for e in ENTITIES:
            where = where_all(e)
            v = self.query(
                access_token, f"SELECT * FROM {e}{where} ORDERBY MetaData.LastUpdatedTime MAXRESULTS 1"
            )
            for r in v["QueryResponse"].get(e, []):
                t = parse_time(r["MetaData"]["LastUpdatedTime"])
                earliest = t if earliest is None else min(earliest, t)
        day = (earliest or datetime.now(timezone.utc)).astimezone(timezone.utc) - timedelta(days=1)
        return day.strftime("%Y-%m-%dT00:00:00Z")


def parse_time(s):
    """An ISO-8601 timestamp with an offset (QBO writes `-08:00`)."""
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class Checks:
    """PASS/FAIL lines, one per check, and the exit status."""

    def __init__(self):
        self.failed = 0

    def check(self, name, fn):
        try:
            detail = fn()
            print(f"PASS  {name}" + (f"  ({detail})" if detail else ""), flush=True)
            return True
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL  {name}: {e!r}", flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)
            return False

    def exit_status(self):
        return 1 if self.failed else 0


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def run_connector(base, command, stdout_path, stderr_path, env=None, timeout=600):
    """Runs an installed connector command under `intuit_rebind.py` with this interpreter;
    returns (exit status, seconds taken). Its stdout (the connector's messages) and stderr go to
    the two files."""
    started = time.monotonic()
    with open(stdout_path, "w", encoding="utf-8") as out, open(stderr_path, "w", encoding="utf-8") as err:
        proc = subprocess.run(
            [sys.executable, REBIND, "--base-url", base, "--", *command],
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    return proc.returncode, time.monotonic() - started


def messages(path):
    """The JSON messages of a connector's stdout (non-JSON lines are skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def tail(path, n=15):
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-n:])


def write_ids(path, extracted):
    """Writes {entity: sorted ids} for the caller (the Rust test) to compare."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({k: sorted(v) for k, v in extracted.items()}, f)
