"""Import rules 1-6 as pure functions: which contact and which shoot an order belongs to, and why.

No I/O here. The importer looks up the candidates (always inside the order's studio: rule 1) and
hands them in; these functions decide and explain.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from rapidfuzz import fuzz

from schemas.canonical import CanonicalOrder

ContactRule = Literal["email", "phone", "created", "ambiguous_email", "ambiguous_phone", "no_match"]
ShootRule = Literal["gallery", "confirmed_on_or_before", "latest_confirmed", "none"]
InboxReason = Literal["ambiguous_contact", "no_contact_match"]

#: A name alone never links a sale (rule 4); above this similarity it becomes a suggestion.
NAME_SUGGESTION_THRESHOLD = 70.0


@dataclass(frozen=True, slots=True)
class Contact:
    contact_id: str
    first_name: str | None
    last_name: str | None
    full_name: str | None
    email_norm: str | None
    phone_e164: str | None

    @property
    def display_name(self) -> str:
        if self.full_name:
            return self.full_name
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True, slots=True)
class Shoot:
    shoot_id: str
    contact_id: str | None
    shoot_date: date | None
    status: str
    gallery_source: str | None
    gallery_ref: str | None


@dataclass(frozen=True, slots=True)
class Candidate:
    contact_id: str
    why: str

    def as_json(self) -> dict[str, str]:
        return {"contact_id": self.contact_id, "why": self.why}


@dataclass(frozen=True, slots=True)
class ContactDecision:
    """The outcome of rules 2-5 for one order."""

    rule: ContactRule
    contact_id: str | None
    candidates: tuple[Candidate, ...] = ()
    create: Contact | None = None

    @property
    def inbox_reason(self) -> InboxReason | None:
        if self.contact_id is not None:
            return None
        return "ambiguous_contact" if self.rule.startswith("ambiguous") else "no_contact_match"


@dataclass(frozen=True, slots=True)
class ShootDecision:
    rule: ShootRule
    shoot_id: str | None


@dataclass(slots=True)
class ContactIndex:
    """A studio's contacts that could match, indexed by email and phone (grows as contacts are created)."""

    by_email: dict[str, list[Contact]] = field(default_factory=dict)
    by_phone: dict[str, list[Contact]] = field(default_factory=dict)

    @classmethod
    def of(cls, contacts: Iterable[Contact]) -> ContactIndex:
        index = cls()
        for contact in contacts:
            index.add(contact)
        return index

    def add(self, contact: Contact) -> None:
        if contact.email_norm:
            self._put(self.by_email.setdefault(contact.email_norm, []), contact)
        if contact.phone_e164:
            self._put(self.by_phone.setdefault(contact.phone_e164, []), contact)

    @staticmethod
    def _put(bucket: list[Contact], contact: Contact) -> None:
        if all(existing.contact_id != contact.contact_id for existing in bucket):
            bucket.append(contact)


def created_contact_id(studio_id: str, order: CanonicalOrder) -> str:
    """A stable id for a contact created by import, so a re-delivered order creates the same one."""
    customer = order.customer
    basis = customer.email or customer.phone or f"{order.source}|{order.external_order_id}"
    digest = hashlib.sha256(f"{studio_id}|{basis}".encode()).hexdigest()[:12]
    return f"GF-{digest.upper()}"


def decide_contact(order: CanonicalOrder, index: ContactIndex, auto_create: bool) -> ContactDecision:
    """Rules 2, 3 and 5: email, then phone, then create (or inbox)."""
    customer = order.customer
    if customer.email:
        by_email = index.by_email.get(customer.email, [])
        if len(by_email) == 1:
            return ContactDecision("email", by_email[0].contact_id)
        if len(by_email) > 1:
            return ContactDecision(
                "ambiguous_email",
                None,
                tuple(Candidate(c.contact_id, "same email") for c in _sorted(by_email)),
            )
    if customer.phone:
        by_phone = index.by_phone.get(customer.phone, [])
        if len(by_phone) == 1:
            return ContactDecision("phone", by_phone[0].contact_id)
        if len(by_phone) > 1:
            return ContactDecision(
                "ambiguous_phone",
                None,
                tuple(Candidate(c.contact_id, "same phone") for c in _sorted(by_phone)),
            )
    if auto_create:
        contact = Contact(
            contact_id=created_contact_id(order.studio_id, order),
            first_name=customer.first_name,
            last_name=customer.last_name,
            full_name=customer.name,
            email_norm=customer.email,
            phone_e164=customer.phone,
        )
        return ContactDecision("created", contact.contact_id, create=contact)
    return ContactDecision("no_match", None)


def name_suggestions(
    name: str | None, contacts: Iterable[Contact], exclude: Iterable[str] = ()
) -> tuple[Candidate, ...]:
    """Rule 4: contacts whose name is close to the order's name, best first (suggestions only)."""
    if not name or not name.strip():
        return ()
    skip = set(exclude)
    wanted = comparable_name(name)
    scored = []
    for contact in contacts:
        if contact.contact_id in skip or not contact.display_name:
            continue
        score = fuzz.token_sort_ratio(wanted, comparable_name(contact.display_name))
        if score >= NAME_SUGGESTION_THRESHOLD:
            scored.append((-score, contact.contact_id))
    scored.sort()
    return tuple(Candidate(contact_id, f"similar name ({-neg:.0f}%)") for neg, contact_id in scored[:5])


def comparable_name(name: str) -> str:
    """A name as compared for suggestions: accents and case ignored ("José" ~ "Jose\u0301" ~ "jose")."""
    decomposed = unicodedata.normalize("NFKD", name)
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


def decide_shoot(
    order: CanonicalOrder, contact_id: str | None, shoots: Sequence[Shoot]
) -> ShootDecision:
    """Rule 6: the gallery's shoot; else the contact's latest confirmed shoot on or before the order
    date; else its latest confirmed shoot; else none."""
    if order.gallery_ref:
        mapped = [
            s for s in shoots if s.gallery_source == order.source and s.gallery_ref == order.gallery_ref
        ]
        if mapped:
            return ShootDecision("gallery", _latest(mapped).shoot_id)
    if contact_id is None:
        return ShootDecision("none", None)
    confirmed = [s for s in shoots if s.contact_id == contact_id and s.status == "confirmed"]
    before = [s for s in confirmed if s.shoot_date is not None and s.shoot_date <= order.order_date]
    if before:
        return ShootDecision("confirmed_on_or_before", _latest(before).shoot_id)
    if confirmed:
        return ShootDecision("latest_confirmed", _latest(confirmed).shoot_id)
    return ShootDecision("none", None)


def decision_record(contact: ContactDecision, shoot: ShootDecision | None) -> dict[str, Any]:
    """The explanation stored with a sale or inbox entry so a person can see why."""
    record: dict[str, Any] = {
        "contact_rule": contact.rule,
        "contact_id": contact.contact_id,
        "candidates": [c.as_json() for c in contact.candidates],
    }
    if shoot is not None:
        record["shoot_rule"] = shoot.rule
        record["shoot_id"] = shoot.shoot_id
    return record


def _latest(shoots: Sequence[Shoot]) -> Shoot:
    return max(shoots, key=lambda s: (s.shoot_date or date.min, s.shoot_id))


def _sorted(contacts: Iterable[Contact]) -> list[Contact]:
    return sorted(contacts, key=lambda c: c.contact_id)
