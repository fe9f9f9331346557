"""A panel's MQTT password rotated over the air (docs/security.md, "Panel credentials").

`rating panel rotate-password` records that a new version is wanted (accounts.rotate). The
gateway service then, every config_push_s, for each panel:

    deliver   the panel is online (so it logged in with its current password) and holds no
              delivered version: a new password (accounts.begin_delivery: only its hash is
              stored) rides on its retained config (`with_password`), readable by that panel only
    confirm   the panel is online and reports holding the delivered version (state `pwn`: it
              is on its flash): the account switches to it (accounts.confirm) and the broker
              reloads its accounts. Mosquitto keeps one password per account (2.0 takes the last
              line of a user), so this reload is also when the old one stops working; the
              panel's connection is dropped, it logs in again with the new one (falling back to
              the old one if the broker has not switched yet)
    finish    the panel logged in with the new version (state `pwv`), or the rotation ended
              otherwise (a USB password, a revoke): the retained config goes back to the one
              without the password

A panel that is offline gets nothing and keeps its current password until it is back. The
plaintext exists only in this process (until `finish`) and in the broker's retained config.

Pure: `with_password`, `without_password`, `decide`. Shell: `due(db, delivered)`.
"""

import json

from gateway import accounts, store

TAIL = b',"pwv":'  # firmware/app.py cuts the config there (protocol/README.md, "Password over the air")


def with_password(payload: bytes, ver: int, password: str) -> bytes:
    """The config payload (protocol.messages.encode_config's bytes) carrying password `ver`."""
    if type(ver) is not int or ver < 1:
        raise ValueError("pwv: must be an integer >= 1")
    if not password or not all(c.isascii() and (c.isalnum() or c in "-_") for c in password):
        raise ValueError("pw: must be URL-safe characters")
    body = without_password(payload)[0]
    return body[:-1] + TAIL + b'%d,"pw":"%s"}' % (ver, password.encode())


def without_password(payload: bytes) -> tuple[bytes, bool]:
    """(the config payload without a password tail, whether it had one)."""
    i = payload.find(TAIL)
    if i <= 0:
        return payload, False
    return payload[:i] + b"}", True


def decide(pending, states, delivered, active):
    """[(action, (site, device), ver)] with action "deliver", "confirm" or "finish".

    pending:   {(site, device): (pending_ver, delivered_before)} rotations asked for
    states:    {(site, device): (online, pwv, pwn)} from the panels' latest states
    delivered: {(site, device): ver} passwords this run published and still carries
    active:    {(site, device): ver} the accounts' active password versions
    """
    out = []
    for key in sorted(pending):
        ver, before = pending[key]
        online, _pwv, pwn = states.get(key, (False, None, None))
        if not online:
            continue  # keeps its current password until it is back
        if before and pwn == ver:
            out.append(("confirm", key, ver))
        elif delivered.get(key) != ver or not before:
            out.append(("deliver", key, ver))
    for key in sorted(delivered):
        ver = delivered[key]
        if key in pending and pending[key][0] >= ver:
            continue
        online, pwv, _pwn = states.get(key, (False, None, None))
        if (online and pwv == ver) or active.get(key) != ver:
            out.append(("finish", key, ver))
    return out


def _state_versions(db):
    out = {}
    for row in store.panel_states(db):
        pwv = pwn = None
        if row["online"]:
            try:
                payload = json.loads(row["payload"] or "{}")
            except ValueError:
                payload = {}
            pwv, pwn = payload.get("pwv"), payload.get("pwn")
        out[(row["site"], row["device"])] = (bool(row["online"]), pwv, pwn)
    return out


def due(db, delivered):
    """decide() on what the database says now."""
    pending = {(r["site"], r["device"]): (r["pending_ver"], r["delivered"]) for r in accounts.pending_rotations(db)}
    if not pending and not delivered:
        return []
    active = {}
    for a in accounts.accounts(db):
        role, site, device = accounts.parse_username(a.username)
        if role == "panel":
            active[(site, device)] = a.ver
    return decide(pending, _state_versions(db), delivered, active)
