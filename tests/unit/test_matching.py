"""Import rules 2-6 (pure): each rule has a case that fails without it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from pipeline.matching import (
    Contact,
    ContactIndex,
    Shoot,
    created_contact_id,
    decide_contact,
    decide_shoot,
    name_suggestions,
)
from schemas.canonical import CanonicalCustomer, CanonicalItem, CanonicalOrder


def order(
    *, email: str | None = None, phone: str | None = None, name: str | None = "Ann Lee",
    gallery: str | None = None, source: str = "shootproof", day: date = date(2026, 11, 30),
    studio: str = "s1",
) -> CanonicalOrder:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return CanonicalOrder(
        studio_id=studio, source=source, external_order_id="o1", placed_at=moment, order_date=day,
        received_at=moment, status="paid", currency="GBP", total=Decimal("10.00"),
        gallery_ref=gallery,
        customer=CanonicalCustomer(name=name, email=email, phone=phone),
        items=[CanonicalItem(description="Print", quantity=1, unit_price=Decimal("10"),
                             line_total=Decimal("10"))],
    )


def contact(cid: str, email: str | None = None, phone: str | None = None,
            first: str = "Ann", last: str = "Lee") -> Contact:
    return Contact(cid, first, last, f"{first} {last}", email, phone)


def shoot(sid: str, cid: str | None, day: date | None, status: str = "confirmed",
          source: str | None = None, ref: str | None = None) -> Shoot:
    return Shoot(sid, cid, day, status, source, ref)


# ---- rule 2: email


def test_one_email_match_links_the_contact() -> None:
    index = ContactIndex.of([contact("C1", email="ann@example.com"), contact("C2", email="bob@example.com")])
    decision = decide_contact(order(email="ann@example.com"), index, auto_create=True)
    assert (decision.rule, decision.contact_id) == ("email", "C1")


def test_two_email_matches_are_ambiguous_with_both_candidates() -> None:
    index = ContactIndex.of([contact("C5", email="tom@example.com"), contact("C6", email="tom@example.com")])
    decision = decide_contact(order(email="tom@example.com", phone="+447700900001"), index, auto_create=True)
    assert decision.contact_id is None
    assert decision.inbox_reason == "ambiguous_contact"
    assert [c.contact_id for c in decision.candidates] == ["C5", "C6"]


def test_email_match_wins_over_a_phone_match_of_another_contact() -> None:
    index = ContactIndex.of([contact("C1", email="ann@example.com"), contact("C2", phone="+447700900123")])
    decision = decide_contact(order(email="ann@example.com", phone="+447700900123"), index, auto_create=False)
    assert decision.contact_id == "C1"


# ---- rule 3: phone when no email match


def test_phone_links_when_the_email_matches_nobody() -> None:
    index = ContactIndex.of([contact("C3", email="priya@example.com", phone="+447700900321")])
    decision = decide_contact(order(email="other@example.net", phone="+447700900321"), index, auto_create=True)
    assert (decision.rule, decision.contact_id) == ("phone", "C3")


def test_two_phone_matches_are_ambiguous() -> None:
    index = ContactIndex.of([contact("C1", phone="+447700900321"), contact("C2", phone="+447700900321")])
    decision = decide_contact(order(phone="+447700900321"), index, auto_create=True)
    assert decision.inbox_reason == "ambiguous_contact"


# ---- rule 4: a name alone never links


def test_a_name_alone_never_links_but_is_suggested() -> None:
    index = ContactIndex.of([contact("C1", email="ann@example.com")])
    decision = decide_contact(order(email=None, phone=None, name="Ann Lee"), index, auto_create=False)
    assert decision.contact_id is None and decision.inbox_reason == "no_contact_match"
    suggestions = name_suggestions("Ann Lee", [contact("C1"), contact("C9", first="Zed", last="Quux")])
    assert [s.contact_id for s in suggestions] == ["C1"]


def test_close_names_are_suggested_excluding_known_candidates() -> None:
    people = [contact("C5", first="Tom", last="Baker"), contact("C6", first="Thomas", last="Baker")]
    assert [s.contact_id for s in name_suggestions("Tom Baker", people, exclude={"C5"})] == ["C6"]


# ---- rule 5: create or inbox


def test_no_match_creates_a_contact_when_the_studio_allows_it() -> None:
    decision = decide_contact(order(email="new@example.com", name="New Person"), ContactIndex(), auto_create=True)
    assert decision.rule == "created" and decision.create is not None
    assert decision.create.email_norm == "new@example.com"
    assert decision.contact_id == created_contact_id("s1", order(email="new@example.com"))


def test_no_match_waits_in_the_inbox_when_the_studio_does_not_allow_creation() -> None:
    decision = decide_contact(order(email="new@example.com"), ContactIndex(), auto_create=False)
    assert decision.contact_id is None and decision.inbox_reason == "no_contact_match"


def test_created_contact_ids_are_stable_and_per_studio() -> None:
    a = created_contact_id("s1", order(email="x@example.com"))
    assert a == created_contact_id("s1", order(email="x@example.com"))
    assert a != created_contact_id("s2", order(email="x@example.com", studio="s2"))


# ---- rule 6: the shoot


def test_the_gallery_mapped_shoot_wins() -> None:
    shoots = [shoot("S1", "C9", date(2026, 1, 1), source="shootproof", ref="330012"),
              shoot("S2", "C1", date(2026, 11, 1))]
    assert decide_shoot(order(gallery="330012"), "C1", shoots).shoot_id == "S1"


def test_a_gallery_ref_of_another_source_does_not_map() -> None:
    shoots = [shoot("S1", "C9", date(2026, 1, 1), source="pictime", ref="330012")]
    assert decide_shoot(order(gallery="330012"), "C1", shoots).shoot_id is None


def test_latest_confirmed_shoot_on_or_before_the_order_date() -> None:
    shoots = [shoot("S5", "C3", date(2026, 6, 20)), shoot("S6", "C3", date(2026, 8, 30)),
              shoot("S7", "C3", date(2026, 12, 20))]
    decision = decide_shoot(order(day=date(2026, 12, 2)), "C3", shoots)
    assert (decision.rule, decision.shoot_id) == ("confirmed_on_or_before", "S6")


def test_a_shoot_on_the_order_date_counts_as_on_or_before() -> None:
    shoots = [shoot("S1", "C1", date(2026, 11, 30)), shoot("S0", "C1", date(2026, 1, 1))]
    assert decide_shoot(order(day=date(2026, 11, 30)), "C1", shoots).shoot_id == "S1"


def test_provisional_and_cancelled_shoots_are_skipped() -> None:
    shoots = [shoot("S3", "C2", date(2026, 11, 1), status="provisional"),
              shoot("S8", "C2", date(2026, 11, 2), status="cancelled"),
              shoot("S2", "C2", date(2026, 10, 12))]
    assert decide_shoot(order(), "C2", shoots).shoot_id == "S2"


def test_only_future_confirmed_shoots_give_the_latest_confirmed() -> None:
    shoots = [shoot("S7", "C1", date(2027, 1, 15)), shoot("S8", "C1", date(2027, 3, 1))]
    decision = decide_shoot(order(day=date(2026, 11, 30)), "C1", shoots)
    assert (decision.rule, decision.shoot_id) == ("latest_confirmed", "S8")


def test_no_confirmed_shoot_gives_none() -> None:
    shoots = [shoot("S8", "C8", date(2026, 11, 10), status="cancelled")]
    assert decide_shoot(order(), "C8", shoots).shoot_id is None


def test_another_contacts_shoot_is_never_chosen() -> None:
    shoots = [shoot("S1", "C2", date(2026, 11, 1))]
    assert decide_shoot(order(), "C1", shoots).shoot_id is None


def test_suggestions_ignore_accents_case_and_small_typos() -> None:
    people = [contact("C1", first="José", last="Álvarez"), contact("C2", first="Jonathan", last="Appleseed")]
    assert [s.contact_id for s in name_suggestions("Jose\u0301 A\u0301lvarez", people)] == ["C1"]
    assert [s.contact_id for s in name_suggestions("jose alvarez", people)] == ["C1"]
    assert [s.contact_id for s in name_suggestions("Jonathon Appleseeed", people)] == ["C2"]
