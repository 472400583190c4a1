#!/usr/bin/env python3
"""Drive the leadroute simulators over HTTPS with the vendors' own Python clients.

Not run by CI. Needs `pip install simple-salesforce hubspot-api-client` (use a
virtualenv outside the repo) and cargo. It starts both simulators with TLS through
`cargo run -p leadroute-sim --example serve -- {hubspot,salesforce} --tls`, trusts the
CA file each one writes, runs the calls below, prints one line per check and exits
non-zero when any check fails.

    python3 connectors/simulators/vendor-check/check.py [--serve-bin PATH]

`--serve-bin` runs an already built example binary instead of `cargo run`.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback

RESULTS = []


def check(name):
    """Runs the decorated function as one named check and records the outcome."""

    def run(fn):
        started = time.monotonic()
        try:
            detail = fn()
            RESULTS.append((True, name, detail or ""))
            print(f"PASS {name}: {detail or ''} ({time.monotonic() - started:.2f}s)", flush=True)
        except Exception as error:  # a failed check is reported, not fatal
            RESULTS.append((False, name, repr(error)))
            print(f"FAIL {name}: {error!r}", flush=True)
            traceback.print_exc()
        return fn

    return run


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def start(serve, kind, ca_file):
    """Starts one simulator and returns (process, printed key=value settings)."""
    args = serve + [kind, "--tls", "--ca-out", ca_file]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    settings = {}
    deadline = time.monotonic() + 600  # the first `cargo run` may compile
    for line in proc.stdout:
        line = line.strip()
        if line == "ready":
            return proc, settings
        if "=" in line:
            key, value = line.split("=", 1)
            settings[key] = value
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"{kind} simulator did not start: {' '.join(args)} printed {settings}")


def strict_tls_check(kind, settings):
    """OpenSSL in strict X.509 mode (Python 3.13's default) must accept the chain too."""
    import socket
    import ssl
    from urllib.parse import urlparse

    @check(f"{kind} TLS chain verifies under VERIFY_X509_STRICT and for localhost")
    def _():
        url = urlparse(settings["base_url"])
        for host in ("127.0.0.1", "localhost"):
            context = ssl.create_default_context(cafile=settings["ca_file"])
            context.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
            with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    version = tls.version()
        return f"{version}, names 127.0.0.1 and localhost"


def salesforce_checks(settings):
    import requests
    from simple_salesforce import Salesforce

    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`,
    # so point the environment at the simulator's CA too.
    os.environ["REQUESTS_CA_BUNDLE"] = settings["ca_file"]
    os.environ.pop("CURL_CA_BUNDLE", None)
    session = requests.Session()
    session.verify = settings["ca_file"]
    instance_url = settings["instance_url"]
    expect(instance_url.startswith("https://"), f"instance_url {instance_url} is not https")
    sf = Salesforce(instance_url=instance_url, session_id=settings["token"], version="62.0", session=session)
    state = {}

    @check("salesforce query (SOQL, first page)")
    def _():
        result = sf.query("SELECT Id, OwnerId, Email, Country FROM Lead WHERE IsConverted = false LIMIT 5")
        expect(result["done"] is True and len(result["records"]) == 5, result)
        expect(result["records"][0]["attributes"]["type"] == "Lead", result["records"][0])
        state["lead"] = result["records"][0]
        return f"{len(result['records'])} leads, totalSize={result['totalSize']}"

    @check("salesforce query + query_more (batchSize=200, nextRecordsUrl)")
    def _():
        first = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
        expect(first["done"] is False and len(first["records"]) == 200, {k: first[k] for k in ("done", "totalSize")})
        more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
        expect(len(more["records"]) > 0, more)
        return f"page 1: 200 of {first['totalSize']}, page 2: {len(more['records'])}"

    @check("salesforce query_all")
    def _():
        result = sf.query_all("SELECT Id FROM Lead")
        expect(len(result["records"]) == result["totalSize"] > 0, f"{len(result['records'])} of {result['totalSize']}")
        return f"{len(result['records'])} records"

    @check("salesforce malformed SOQL raises SalesforceMalformedRequest")
    def _():
        from simple_salesforce.exceptions import SalesforceMalformedRequest

        try:
            sf.query("SELECT Id FROM Lead WHERE")
        except SalesforceMalformedRequest as error:
            expect(error.status == 400, error.status)
            return f"400 {error.content[0]['errorCode']}"
        raise AssertionError("no error")

    @check("salesforce unknown record raises SalesforceResourceNotFound")
    def _():
        from simple_salesforce.exceptions import SalesforceResourceNotFound

        try:
            sf.Lead.get("00Q000000000000AAA")
        except SalesforceResourceNotFound as error:
            return f"404 {error.content[0]['errorCode']}"
        raise AssertionError("no error")

    @check("salesforce limits")
    def _():
        limits = sf.limits()
        daily = limits["DailyApiRequests"]
        expect(daily["Max"] > 0 and daily["Remaining"] <= daily["Max"], daily)
        return f"DailyApiRequests {daily['Remaining']}/{daily['Max']}"

    @check("salesforce query users")
    def _():
        result = sf.query("SELECT Id, IsActive FROM User WHERE IsActive = true")
        users = [r["Id"] for r in result["records"]]
        expect(len(users) >= 2, result)
        state["users"] = users
        return f"{len(users)} active users"

    @check("salesforce Lead.update (OwnerId, Sforce-Auto-Assign: FALSE) then Lead.get")
    def _():
        lead = state["lead"]
        target = next(u for u in state["users"] if u != lead["OwnerId"])
        status = sf.Lead.update(lead["Id"], {"OwnerId": target}, headers={"Sforce-Auto-Assign": "FALSE"})
        expect(status == 204, f"status {status}")
        after = sf.Lead.get(lead["Id"])
        expect(after["OwnerId"] == target, f"OwnerId {after['OwnerId']} != {target}")
        state["moved_to"] = target
        return f"lead {lead['Id']} -> {target}"

    @check("salesforce Lead.describe")
    def _():
        describe = sf.Lead.describe()
        names = {f["name"] for f in describe["fields"]}
        expect({"Id", "OwnerId", "Email"} <= names, sorted(names)[:10])
        return f"{len(names)} fields"

    @check("salesforce bulk2 Lead.update")
    def _():
        lead = state["lead"]
        back = next(u for u in state["users"] if u != state.get("moved_to"))
        result = sf.bulk2.Lead.update(records=[{"Id": lead["Id"], "OwnerId": back}], wait=1)
        outcome = result[0] if isinstance(result, list) else result
        expect(outcome["numberRecordsProcessed"] == 1 and outcome["numberRecordsFailed"] == 0, result)
        after = sf.Lead.get(lead["Id"])
        expect(after["OwnerId"] == back, f"OwnerId {after['OwnerId']} != {back}")
        state["bulk_job"] = outcome["job_id"]
        return f"job {outcome['job_id']}: 1 processed, 0 failed"

    @check("salesforce bulk2 successful / failed / unprocessed results")
    def _():
        job = state["bulk_job"]
        ok = sf.bulk2.Lead.get_successful_records(job).splitlines()
        expect(ok[0].startswith('"sf__Id","sf__Created"') and len(ok) == 2, ok)
        failed = sf.bulk2.Lead.get_failed_records(job).splitlines()
        expect(failed[0].startswith('"sf__Id","sf__Error"') and len(failed) == 1, failed)
        unprocessed = sf.bulk2.Lead.get_unprocessed_records(job).splitlines()
        expect(len(unprocessed) <= 1, unprocessed)
        return f"successful header {ok[0]}"

    @check("salesforce Lead.updated / Lead.deleted (getUpdated, getDeleted)")
    def _():
        import datetime

        end = datetime.datetime.now(datetime.timezone.utc)
        start = end - datetime.timedelta(days=1)
        # Salesforce covers whole minutes only, so this run's own writes may be missing.
        updated = sf.Lead.updated(start, end)
        expect(isinstance(updated["ids"], list) and updated["latestDateCovered"], updated.keys())
        deleted = sf.Lead.deleted(start, end)
        expect("deletedRecords" in deleted and "earliestDateAvailable" in deleted, deleted)
        return f"{len(updated['ids'])} updated, {len(deleted['deletedRecords'])} deleted, covered to {updated['latestDateCovered']}"

    @check("salesforce Lead.create then Lead.delete")
    def _():
        created = sf.Lead.create({"LastName": "Vendorcheck", "Company": "Check Co", "Email": "vc@check.example"})
        expect(created["success"] is True and created["id"].startswith("00Q"), created)
        status = sf.Lead.delete(created["id"])
        expect(status == 204, status)
        return f"created and deleted {created['id']}"

    @check("salesforce Contact.create; Lead.create without Company raises REQUIRED_FIELD_MISSING")
    def _():
        from simple_salesforce.exceptions import SalesforceMalformedRequest

        contact = sf.Contact.create({"LastName": "Vendorcheck", "Email": "vc.contact@check.example"})
        expect(contact["success"] is True and contact["id"].startswith("003"), contact)
        try:
            sf.Lead.create({"LastName": "Vendorcheck"})
        except SalesforceMalformedRequest as error:
            expect(error.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING", error.content)
            return f"contact {contact['id']}, 400 {error.content[0]['errorCode']} {error.content[0]['fields']}"
        raise AssertionError("no error")

    @check("salesforce OAuth refresh_token grant names an https instance_url")
    def _():
        response = session.post(
            f"{instance_url}/services/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": settings["client_id"],
                "client_secret": settings["client_secret"],
                "refresh_token": settings["refresh_token"],
            },
        )
        expect(response.status_code == 200, response.text)
        body = response.json()
        expect(body["instance_url"] == instance_url, body["instance_url"])
        fresh = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], version="62.0", session=session)
        expect(fresh.query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1, "query with the new token")
        return "token issued and used"

    @check("salesforce dead session raises SalesforceExpiredSession")
    def _():
        from simple_salesforce.exceptions import SalesforceExpiredSession

        dead = Salesforce(instance_url=instance_url, session_id="00Dbogus!session", version="62.0", session=session)
        try:
            dead.query("SELECT Id FROM User LIMIT 1")
        except SalesforceExpiredSession as error:
            return f"401 {error.content[0]['errorCode']}"
        raise AssertionError("no error")


def hubspot_checks(settings):
    from hubspot import HubSpot
    from hubspot.crm.associations.v4.models import (
        BatchInputPublicFetchAssociationsBatchRequest,
        PublicFetchAssociationsBatchRequest,
    )
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInput,
        Filter,
        FilterGroup,
        PublicObjectSearchRequest,
        SimplePublicObjectBatchInput,
    )

    base_url = settings["base_url"]
    expect(base_url.startswith("https://"), f"base_url {base_url} is not https")
    api = HubSpot(access_token=settings["token"], host=base_url, ssl_ca_cert=settings["ca_file"])
    state = {}

    @check("hubspot contacts basic_api.get_page")
    def _():
        page = api.crm.contacts.basic_api.get_page(limit=10, properties=["email", "hubspot_owner_id"])
        expect(len(page.results) == 10, len(page.results))
        expect(page.paging.next.after, page.paging)
        second = api.crm.contacts.basic_api.get_page(limit=10, after=page.paging.next.after)
        expect(second.results[0].id != page.results[0].id, "second page repeats the first")
        state["contacts"] = page.results
        return f"10 contacts, next after={page.paging.next.after}"

    @check("hubspot owners get_page")
    def _():
        page = api.crm.owners.owners_api.get_page(limit=100)
        expect(len(page.results) >= 2, len(page.results))
        state["owners"] = [o.id for o in page.results]
        return f"{len(page.results)} owners"

    @check("hubspot contacts batch_api.update (hubspot_owner_id)")
    def _():
        contact = state["contacts"][0]
        target = next(o for o in state["owners"] if o != contact.properties.get("hubspot_owner_id"))
        body = BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=contact.id, properties={"hubspot_owner_id": target})]
        )
        result = api.crm.contacts.batch_api.update(batch_input_simple_public_object_batch_input=body)
        expect(result.status == "COMPLETE", result.status)
        expect(result.results[0].properties["hubspot_owner_id"] == target, result.results[0].properties)
        return f"contact {contact.id} -> owner {target}"

    @check("hubspot contacts search_api.do_search")
    def _():
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="HAS_PROPERTY")])],
            sorts=["hs_object_id"],
            properties=["email", "hubspot_owner_id"],
            limit=20,
        )
        result = api.crm.contacts.search_api.do_search(public_object_search_request=request)
        expect(result.total > 0 and len(result.results) == min(20, result.total), result.total)
        return f"total={result.total}, {len(result.results)} on the first page"

    @check("hubspot associations v4 batch read (contacts -> companies)")
    def _():
        ids = [c.id for c in state["contacts"]]
        body = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids]
        )
        result = api.crm.associations.v4.batch_api.get_page(
            "contacts", "companies", batch_input_public_fetch_associations_batch_request=body
        )
        expect(result.status == "COMPLETE", result.status)
        linked = sum(len(r.to) for r in result.results)
        expect(linked > 0, "no contact of the first page has a company")
        return f"{len(result.results)} contacts with {linked} company links"

    @check("hubspot contacts batch_api.read")
    def _():
        from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        ids = [c.id for c in state["contacts"][:3]]
        body = BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties=["email"], properties_with_history=[]
        )
        result = api.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=body)
        expect(sorted(r.id for r in result.results) == sorted(ids), [r.id for r in result.results])
        return f"{len(result.results)} contacts"

    @check("hubspot contacts basic_api.update + get_by_id with associations")
    def _():
        contact = state["contacts"][1]
        target = state["owners"][0]
        from hubspot.crm.contacts import SimplePublicObjectInput

        updated = api.crm.contacts.basic_api.update(
            contact.id, simple_public_object_input=SimplePublicObjectInput(properties={"hubspot_owner_id": target})
        )
        expect(updated.properties["hubspot_owner_id"] == target, updated.properties)
        fetched = api.crm.contacts.basic_api.get_by_id(contact.id, properties=["hubspot_owner_id"], associations=["companies"])
        expect(fetched.properties["hubspot_owner_id"] == target, fetched.properties)
        return f"contact {contact.id}: owner {target}, associations {list((fetched.associations or {}).keys())}"

    @check("hubspot companies get_page and owners get_by_id")
    def _():
        page = api.crm.companies.basic_api.get_page(limit=5, properties=["domain", "hubspot_owner_id"])
        expect(len(page.results) == 5, len(page.results))
        owner = api.crm.owners.owners_api.get_by_id(int(state["owners"][0]))
        expect(owner.id == state["owners"][0], owner)
        return f"5 companies, owner {owner.email}"

    @check("hubspot associations v4 basic_api.get_page")
    def _():
        contact = state["contacts"][0]
        page = api.crm.associations.v4.basic_api.get_page("contacts", contact.id, "companies", limit=10)
        expect(all(r.to_object_id for r in page.results), page)
        return f"{len(page.results)} companies for contact {contact.id}"

    @check("hubspot contacts basic_api.create, 409 on a taken email, batch_api.create")
    def _():
        from hubspot.crm.contacts import (
            BatchInputSimplePublicObjectBatchInputForCreate,
            SimplePublicObjectBatchInputForCreate,
            SimplePublicObjectInputForCreate,
        )
        from hubspot.crm.contacts.exceptions import ApiException

        stamp = int(time.time() * 1000)
        email = f"vendorcheck.{stamp}@check.example"
        created = api.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": email, "firstname": "Vendor"}, associations=[])
        )
        expect(created.id and created.properties["email"] == email, created)
        try:
            api.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": email}, associations=[]))
            raise AssertionError("no error for a taken email")
        except ApiException as error:
            expect(error.status == 409, error.status)
            expect(f"Existing ID: {created.id}" in error.body, error.body)
        batch = api.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(properties={"email": f"vendorcheck.{stamp}.{i}@check.example"}, associations=[])
                    for i in range(2)
                ]
            )
        )
        expect(batch.status == "COMPLETE" and len(batch.results) == 2, batch)
        partial = api.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(
                        properties={"email": f"vendorcheck.{stamp}.new@check.example"}, associations=[], object_write_trace_id="a"
                    ),
                    SimplePublicObjectBatchInputForCreate(properties={"email": email}, associations=[], object_write_trace_id="b"),
                ]
            )
        )
        expect(len(partial.results) == 1 and partial.num_errors == 1, partial)
        expect(partial.errors[0].category == "CONFLICT", partial.errors)
        return f"contact {created.id}, 409 names it, batch created {sorted(r.id for r in batch.results)}, 207 with trace ids"

    @check("hubspot companies basic_api.create")
    def _():
        from hubspot.crm.companies import SimplePublicObjectInputForCreate

        created = api.crm.companies.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"name": "Vendorcheck Co", "domain": "vendorcheck.example"}, associations=[])
        )
        expect(created.id and created.properties["domain"] == "vendorcheck.example", created)
        return f"company {created.id}"

    @check("hubspot unknown contact raises ApiException 404")
    def _():
        from hubspot.crm.contacts.exceptions import ApiException

        try:
            api.crm.contacts.basic_api.get_by_id("999999999")
        except ApiException as error:
            expect(error.status == 404, error.status)
            return "404"
        raise AssertionError("no error")

    @check("hubspot OAuth tokens_api.create (refresh_token grant)")
    def _():
        tokens = api.oauth.tokens_api.create(
            grant_type="refresh_token",
            client_id=settings["client_id"],
            client_secret=settings["client_secret"],
            refresh_token=settings["refresh_token"],
        )
        expect(tokens.access_token and tokens.expires_in > 0, tokens)
        oauth = HubSpot(access_token=tokens.access_token, host=base_url, ssl_ca_cert=settings["ca_file"])
        page = oauth.crm.owners.owners_api.get_page(limit=1)
        expect(len(page.results) == 1, page)
        return f"token_type={tokens.token_type}, expires_in={tokens.expires_in}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-bin", help="built `serve` example binary (default: cargo run)")
    args = parser.parse_args()
    serve = [args.serve_bin] if args.serve_bin else ["cargo", "run", "-q", "-p", "leadroute-sim", "--example", "serve", "--"]
    tmp = tempfile.mkdtemp(prefix="leadroute-vendor-check-")
    procs = []
    try:
        for kind, run in (("salesforce", salesforce_checks), ("hubspot", hubspot_checks)):
            try:
                proc, settings = start(serve, kind, os.path.join(tmp, f"{kind}-ca.pem"))
            except Exception as error:
                RESULTS.append((False, f"{kind} simulator start", repr(error)))
                print(f"FAIL {kind} simulator start: {error!r}", flush=True)
                continue
            procs.append(proc)
            print(f"-- {kind} at {settings.get('base_url')} (CA {settings.get('ca_file')})", flush=True)
            strict_tls_check(kind, settings)
            try:
                run(settings)
            except Exception as error:
                RESULTS.append((False, f"{kind} client setup", repr(error)))
                print(f"FAIL {kind} client setup: {error!r}", flush=True)
                traceback.print_exc()
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    failed = [r for r in RESULTS if not r[0]]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    for _, name, detail in failed:
        print(f"  failed: {name}: {detail}")
    return 1 if failed or not RESULTS else 0


if __name__ == "__main__":
    sys.exit(main())
