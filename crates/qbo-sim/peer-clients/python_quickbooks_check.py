#!/usr/bin/env python3
"""Drive the real `python-quickbooks` + `intuit-oauth` clients against qbo-sim.

Only URLs are changed from a normal production setup:
  * intuitlib's AuthClient gets the simulator's discovery document as its `environment`
    (intuitlib treats any value other than sandbox/production as a discovery-document URL);
  * `QuickBooks.api_url_v3` points at `{base}/v3`.
`OAUTHLIB_INSECURE_TRANSPORT=1` is set because the simulator speaks plain HTTP (requests-oauthlib
refuses to attach a bearer token to an http:// URL otherwise).

Usage: python python_quickbooks_check.py --base-url http://127.0.0.1:PORT [--refresh-token RT]
Exit status 0 when every check passed. See README.md next to this file.
"""

import argparse
import json
import os
import sys
import traceback
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("QBO_SIM_BASE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--client-id", default=os.environ.get("QBO_SIM_CLIENT_ID", "sim-client-id"))
    ap.add_argument("--client-secret", default=os.environ.get("QBO_SIM_CLIENT_SECRET", "sim-client-secret"))
    ap.add_argument("--refresh-token", default=os.environ.get("QBO_SIM_REFRESH_TOKEN"),
                    help="default: ask the simulator's admin API for a fresh one (POST /__admin/tokens/reconnect)")
    ap.add_argument("--realm-id", default=os.environ.get("QBO_SIM_REALM_ID", "9130350000000001"))
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    if base.startswith("http://"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

    # Imported after the environment tweak (oauthlib reads it lazily, but be safe).
    from intuitlib.client import AuthClient
    from intuitlib.exceptions import AuthClientError
    from quickbooks import QuickBooks
    from quickbooks.exceptions import AuthorizationException, ObjectNotFoundException, ValidationException
    from quickbooks.objects.company_info import CompanyInfo
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.preferences import Preferences
    from quickbooks.objects.vendor import Vendor

    refresh_token = args.refresh_token
    if not refresh_token:
        req = urllib.request.Request(base + "/__admin/tokens/reconnect", method="POST", data=b"")
        with urllib.request.urlopen(req) as r:
            refresh_token = json.load(r)["refresh_token"]

    results = []

    def check(name, fn):
        try:
            detail = fn()
            results.append((name, True, detail or ""))
            print(f"PASS  {name}" + (f"  ({detail})" if detail else ""))
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            results.append((name, False, repr(e)))
            print(f"FAIL  {name}: {e!r}")
            traceback.print_exc(limit=3, file=sys.stdout)

    state = {}

    def expect(cond, msg):
        if not cond:
            raise AssertionError(msg)

    # --- OAuth through intuitlib -------------------------------------------------------------
    def make_auth_client():
        ac = AuthClient(
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uri="http://localhost/callback",
            environment=base + "/.well-known/openid_configuration",
            refresh_token=refresh_token,
        )
        expect(ac.token_endpoint == base + "/oauth2/v1/tokens/bearer", f"token_endpoint {ac.token_endpoint}")
        state["auth"] = ac
        return f"token_endpoint={ac.token_endpoint}"

    check("AuthClient(environment=<sim discovery doc>)", make_auth_client)

    def refresh():
        ac = state["auth"]
        old = ac.refresh_token
        ac.refresh()
        expect(ac.access_token, "no access_token")
        expect(ac.expires_in == 3600, f"expires_in {ac.expires_in}")
        expect(ac.x_refresh_token_expires_in and ac.x_refresh_token_expires_in > 0, "x_refresh_token_expires_in")
        expect(ac.refresh_token and ac.refresh_token != old, "refresh token did not rotate")
        state["rotated_from"] = old
        return f"rotated refresh token, access token {len(ac.access_token)} chars"

    check("AuthClient.refresh()", refresh)

    def old_refresh_token_rejected():
        ac = state["auth"]
        try:
            ac.refresh(refresh_token=state["rotated_from"])
        except AuthClientError as e:
            expect(e.status_code == 400, f"status {e.status_code}")
            expect(json.loads(e.content)["error"] == "invalid_grant", e.content)
            return f"400 {e.content.decode()}"
        raise AssertionError("old refresh token was accepted")

    check("AuthClient.refresh(old token) -> invalid_grant", old_refresh_token_rejected)

    def make_client():
        QuickBooks.api_url_v3 = base + "/v3"
        QuickBooks.sandbox_api_url_v3 = base + "/v3"
        ac = state["auth"]
        qb = QuickBooks(auth_client=ac, refresh_token=ac.refresh_token, company_id=args.realm_id, minorversion=75)
        expect(qb.refresh_token == ac.refresh_token, "client refresh token")
        state["qb"] = qb
        return f"api_url={qb.api_url}"

    check("QuickBooks(auth_client=..., company_id=...)", make_client)
    qb = state.get("qb")
    if qb is None:
        return summary(results)

    # --- reads -------------------------------------------------------------------------------
    def company_info():
        ci = CompanyInfo.get(args.realm_id, qb=qb)
        expect(ci.CompanyName, "no CompanyName")
        expect(str(ci.Id) == "1", f"Id {ci.Id}")
        return f"CompanyName={ci.CompanyName!r}"

    check("CompanyInfo.get(realm)", company_info)

    def preferences():
        p = Preferences.get(qb=qb)
        expect(p.Id == "1", f"Id {p.Id}")
        return "ok"

    check("Preferences.get()", preferences)

    def customer_all():
        cs = Customer.all(qb=qb)
        expect(len(cs) == 100, f"{len(cs)} customers (default MAXRESULTS is 100)")
        expect(all(c.Active for c in cs), "inactive customer in a plain SELECT")
        expect(all(isinstance(c.Id, str) for c in cs), "Id not a string")
        state["first_page"] = [c.Id for c in cs]
        return f"{len(cs)} customers, first {cs[0].DisplayName!r}"

    check("Customer.all()", customer_all)

    def customer_count():
        n = Customer.count(qb=qb)
        n_all = Customer.count("Active IN (true, false)", qb=qb)
        expect(isinstance(n, int) and 0 < n < n_all, f"count {n} / {n_all}")
        state["active_count"] = n
        return f"{n} active of {n_all}"

    check("Customer.count() / count(where)", customer_count)

    def customer_filter_active():
        cs = Customer.filter(Active=True, max_results=1000, qb=qb)
        expect(len(cs) == min(1000, state["active_count"]), f"{len(cs)} vs count {state['active_count']}")
        inactive = Customer.filter(Active=False, max_results=1000, qb=qb)
        expect(inactive and all(not c.Active for c in inactive), "Active=False")
        expect(all(c.DisplayName.endswith(" (deleted)") for c in inactive), "inactive names")
        return f"{len(cs)} active, {len(inactive)} inactive"

    check("Customer.filter(Active=True/False)", customer_filter_active)

    def customer_paging():
        seen = []
        start = 1
        while True:
            page = Customer.filter(Active=True, start_position=start, max_results=250, order_by="Id", qb=qb)
            seen.extend(c.Id for c in page)
            if len(page) < 250:
                break
            start += 250
        expect(len(seen) == state["active_count"], f"paged {len(seen)} vs count {state['active_count']}")
        expect(len(set(seen)) == len(seen), "duplicates across pages")
        expect(seen[:100] == state["first_page"], "first page differs from Customer.all()")
        all_page = Customer.all(start_position=101, max_results=5, qb=qb)
        expect([c.Id for c in all_page] == seen[100:105], "all(start_position=101, max_results=5)")
        return f"{len(seen)} customers in {start // 250 + 1} pages"

    check("paging: filter(start_position, max_results) / all(...)", customer_paging)

    def customer_where():
        cs = Customer.where("DisplayName LIKE 'A%'", order_by="DisplayName DESC", max_results=20, qb=qb)
        expect(cs and all(c.DisplayName.upper().startswith("A") for c in cs), "LIKE 'A%'")
        names = [c.DisplayName for c in cs]
        expect(names == sorted(names, key=str.lower, reverse=True), f"ORDERBY DESC: {names[:5]}")
        return f"{len(cs)} rows, first {names[0]!r}"

    check("Customer.where(\"DisplayName LIKE 'A%'\", order_by=...)", customer_where)

    def customer_query():
        cs = Customer.query(
            "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '2026-01-10T00:00:00Z' "
            "AND Active IN (true, false) ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 50",
            qb=qb,
        )
        expect(cs, "no rows")
        ts = [c.MetaData["LastUpdatedTime"] for c in cs]
        expect(all(t[-6:] in ("-08:00", "-07:00") for t in ts), f"offsets {ts[:3]}")
        return f"{len(cs)} rows from {ts[0]}"

    check("Customer.query('SELECT ... ORDER BY ... MAXRESULTS 50')", customer_query)

    def apostrophe():
        # Find a DisplayName with an apostrophe, then look it up by exact name with filter(),
        # which escapes ' as \' (utils.build_where_clause).
        cands = Customer.where("DisplayName LIKE '%\\'%'", max_results=5, qb=qb)
        expect(cands, "no DisplayName with an apostrophe")
        name = cands[0].DisplayName
        expect("'" in name, name)
        got = Customer.filter(DisplayName=name, qb=qb)
        expect([c.Id for c in got] == [cands[0].Id], f"filter(DisplayName={name!r}) -> {[c.Id for c in got]}")
        chosen = Customer.choose([name], field="DisplayName", qb=qb)
        expect([c.Id for c in chosen] == [cands[0].Id], "choose()")
        return f"{name!r} -> Id {got[0].Id}"

    check("apostrophe in DisplayName (filter/choose escape as \\')", apostrophe)

    def customer_get():
        cid = state["first_page"][3]
        c = Customer.get(cid, qb=qb)
        expect(c.Id == cid, f"Id {c.Id}")
        expect(c.DisplayName, "DisplayName")
        expect(c.BillAddr.City, "BillAddr.City")
        return f"Id {cid} -> {c.DisplayName!r}"

    check("Customer.get(id)", customer_get)

    def customer_get_missing():
        try:
            Customer.get("999999999", qb=qb)
        except ObjectNotFoundException as e:
            return f"ObjectNotFoundException {e.error_code}"
        raise AssertionError("no error")

    check("Customer.get(missing) -> ObjectNotFoundException", customer_get_missing)

    def item_all():
        items = Item.all(qb=qb)
        expect(items, "no items")
        expect(all(i.Active for i in items), "inactive items")
        item = Item.get(items[0].Id, qb=qb)
        expect(item.Name == items[0].Name, "Item.get")
        return f"{len(items)} items (SELECT *, Sku FROM Item), first {items[0].Name!r}"

    check("Item.all() / Item.get()", item_all)

    def invoice_filter():
        inv = Invoice.all(max_results=1, qb=qb)[0]
        cid = inv.CustomerRef.value
        invs = Invoice.filter(CustomerRef=cid, qb=qb)
        expect(invs and all(i.CustomerRef.value == cid for i in invs), "CustomerRef filter")
        by_date = Invoice.filter(TxnDate=inv.TxnDate, qb=qb)
        expect(inv.Id in [i.Id for i in by_date], "TxnDate filter")
        got = Invoice.get(inv.Id, qb=qb)
        expect(got.TotalAmt == inv.TotalAmt and len(got.Line) == len(inv.Line), "Invoice.get")
        n = Invoice.count(f"TxnDate >= '{inv.TxnDate}'", qb=qb)
        return f"{len(invs)} invoices for customer {cid}, {len(by_date)} on {inv.TxnDate}, {n} since"

    check("Invoice.filter(CustomerRef=..)/filter(TxnDate=..)/get/count", invoice_filter)

    def cdc():
        from quickbooks.cdc import change_data_capture

        since = "2026-01-28T00:00:00-08:00"
        resp = change_data_capture([Customer, Invoice, Vendor], since, qb=qb)
        customers = list(resp.Customer)
        invoices = list(resp.Invoice)
        vendors = list(getattr(resp, "Vendor", []))
        since_q = f"Metadata.LastUpdatedTime >= '{since}'"
        want_c = Customer.count(f"{since_q} AND Active IN (true, false)", qb=qb)
        want_i = Invoice.count(since_q, qb=qb)
        want_v = Vendor.count(f"{since_q} AND Active IN (true, false)", qb=qb)
        expect(len(customers) == want_c and len(invoices) == want_i and len(vendors) == want_v,
               f"{len(customers)}/{want_c} customers, {len(invoices)}/{want_i} invoices, "
               f"{len(vendors)}/{want_v} vendors")
        expect(any(not c.Active for c in customers), "deactivated customers missing")
        return (f"{len(customers)} customers ({sum(not c.Active for c in customers)} inactive), "
                f"{len(invoices)} invoices, {len(vendors)} vendors")

    check("change_data_capture([Customer, Invoice, Vendor], since)", cdc)

    def vendors():
        vs = Vendor.all(qb=qb)
        n = Vendor.count(qb=qb)
        expect(vs and len(vs) == n and all(v.Active for v in vs), f"{len(vs)} vendors, count {n}")
        got = Vendor.get(vs[0].Id, qb=qb)
        expect(got.DisplayName == vs[0].DisplayName, "Vendor.get")
        return f"{len(vs)} active vendors"

    check("Vendor.all()/count()/get()", vendors)

    def bad_query():
        try:
            Customer.query("SELECT * FROM Customer WHERE DisplayName = 'Cutlery 'R Us'", qb=qb)
        except ValidationException as e:
            expect(e.error_code == 4000, f"code {e.error_code}")
            return f"ValidationException {e.error_code}: {e.message}"
        raise AssertionError("no error")

    check("unescaped apostrophe -> ValidationException 4000", bad_query)

    def expired_token():
        req = urllib.request.Request(base + "/__admin/tokens/expire", method="POST", data=b"")
        urllib.request.urlopen(req).close()
        try:
            Customer.all(max_results=1, qb=qb)
        except AuthorizationException as e:
            expect(e.error_code == 401, f"code {e.error_code}")
        else:
            raise AssertionError("expired token accepted")
        # The documented recovery: refresh through the auth client and start a new client.
        ac = state["auth"]
        ac.access_token = None
        qb2 = QuickBooks(auth_client=ac, refresh_token=ac.refresh_token, company_id=args.realm_id, minorversion=75)
        expect(len(Customer.all(max_results=2, qb=qb2)) == 2, "after refresh")
        state["qb"] = qb2
        return "401 -> AuthorizationException, refreshed, works again"

    check("expired access token -> AuthorizationException, then refresh", expired_token)

    def revoke():
        ac = state["auth"]
        ok = ac.revoke(token=ac.refresh_token)
        expect(ok is True, "revoke")
        try:
            ac.refresh()
        except AuthClientError as e:
            expect(e.status_code == 400, f"status {e.status_code}")
            return f"revoked; refresh -> 400 {e.content.decode()}"
        raise AssertionError("refresh after revoke succeeded")

    check("AuthClient.revoke() then refresh -> invalid_grant", revoke)

    return summary(results)


def summary(results) -> int:
    failed = [n for n, ok, _ in results if not ok]
    print(f"\n{len(results) - len(failed)}/{len(results)} checks passed")
    for n in failed:
        print(f"  failed: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
