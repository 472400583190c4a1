#!/usr/bin/env python3
"""Regenerates fuzz/corpus/<target>/ seed files from the repository's test fixtures and the
string literals of its unit tests. Run from the repository root: python3 fuzz/seeds.py"""
import glob, hashlib, json, os, re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def literals(paths):
    for path in paths:
        text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        for m in re.finditer(r'r(#+)"(.*?)"\1', text, re.S):
            yield m.group(2)
        for m in re.finditer(r'(?<![r#\w])"((?:[^"\\\n]|\\.)*)"', text):
            s = m.group(1)
            s = s.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            yield s


def files(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def is_json(s):
    s = s.strip()
    if not s or s[0] not in "[{":
        return False
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > 64 * 1024:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    return open(os.path.join(ROOT, path), "rb").read()


# HubSpot / Salesforce response bodies: every JSON literal of the connectors' sources and tests.
for s in literals(files("connectors/hubspot/src/*.rs") + files("connectors/hubspot/tests/**/*.rs")):
    if is_json(s):
        write("hubspot_decode", s)
for s in literals(files("connectors/salesforce/src/*.rs") + files("connectors/salesforce/tests/**/*.rs")):
    if is_json(s) or s.lower().startswith(("sf__id", "id,")):
        write("salesforce_decode", s)
    if "Sforce-Limit-Info" in s or s.startswith("api-usage="):
        write("salesforce_decode", s)

# Webhooks: signed bodies (first byte 129: signed, timestamp at receipt) and raw requests.
for s in literals(files("connectors/hubspot/src/webhook.rs") + files("connectors/hubspot/tests/**/*.rs")
                  + files("tests/it/webhooks.rs")):
    if is_json(s) and "subscriptionType" in s:
        body = s if s.strip().startswith("[") else "[" + s + "]"
        write("hubspot_webhook", b"\x81" + body.encode())
        write("hubspot_webhook", b"\x80POST\nhttps://leadroute.example/webhooks/hubspot\n"
              b"x-hubspot-signature-v3: AAAA\nx-hubspot-request-timestamp: 1767225600000\n\n" + body.encode())
write("hubspot_webhook", b"\x00POST\n/webhooks/hubspot\nx-hubspot-signature-v3: AAAA\n"
      b"x-hubspot-request-timestamp: -9223372036854775808\n\n[]")
write("hubspot_webhook", b"\x00POST\nhttps://leadroute.example/webhooks/hubspot%3A%2F?a=%40\n"
      b"X-HubSpot-Signature-v3: x\nX-HubSpot-Request-Timestamp: 9223372036854775807\n\n[]")
for s in literals(files("connectors/salesforce/src/webhook.rs") + files("connectors/simulators/src/salesforce/outbound.rs")):
    if "<" in s and ("Envelope" in s or "Notification" in s):
        write("salesforce_outbound", s.replace("{org}", "00D5e000000AbCdEAK"))
        write("salesforce_outbound", s.replace("{org}", "00D5e000000AbCd"))

# SOQL: every literal that looks like a query.
for s in literals(files("connectors/simulators/src/salesforce/**/*.rs") + files("connectors/salesforce/src/*.rs")
                  + files("connectors/simulators/tests/*.rs") + files("connectors/salesforce/tests/**/*.rs")):
    if re.match(r"\s*select\s", s, re.I):
        write("sim_soql", s)

# Config and policy TOML: the shipped examples and the test literals.
for p in files("config/*.toml"):
    write("config_toml", read(p))
for s in literals(files("src/config/*.rs") + files("tests/it/*.rs")):
    if re.search(r"^\s*\[(crm|store|sync|webhook|drift|policy|service|writer)", s, re.M):
        write("config_toml", s)
for p in files("config/policies/*.toml"):
    write("policy_toml", read(p))
for s in literals(files("src/policy/*.rs") + files("src/cli/policy.rs")):
    if re.search(r"^\s*\[\[?\w", s, re.M) and "=" in s:
        write("policy_toml", s)

# Match CSV: accounts, NUL, contacts.
write("match_csv", read("tests/fixtures/match/accounts.csv") + b"\0" + read("tests/fixtures/match/contacts.csv"))
csvs = [s for s in literals(files("src/cli/match_cmd.rs") + files("tests/it/match_cli.rs")) if s.startswith("id,")]
accounts = [s for s in csvs if re.search(r"(^|,)name(,|$)", s.split("\n")[0])]
contacts = [s for s in csvs if "email" in s.split("\n")[0]]
for a in accounts:
    for c in contacts:
        write("match_csv", (a + "\0" + c).encode())
