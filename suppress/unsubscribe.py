"""The recipient's pages: ``/u/<token>`` (confirm, one-click, done) and ``/preferences/<token>``.

GET and HEAD never change anything: link scanners and security gateways fetch every link in a
message (R-OC-10). The RFC 8058 one-click POST needs nothing but the token: no cookie, no CSRF
field, no login (R-OC-7); it commits before it answers, and answers 200, never a redirect
(R-OC-6, R-OC-8). Every kind of bad token gets the same page and status (R-OC-3).
"""

from flask import Blueprint, Response, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from suppress import suppressions
from suppress.database import direct_transaction
from suppress.models import GLOBAL_SCOPE, MailingList, db
from suppress.tokens import InvalidToken, LinkTarget, decode, read

bp = Blueprint("unsubscribe", __name__)

ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
TOKEN_PATHS = ("/u/", "/preferences/")
# The token in the URL must not leak to other sites through Referer, caches or search engines.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    """On every answer under a token URL, error pages included: the URL holds the token."""
    if request.path.startswith(TOKEN_PATHS):
        response.headers.update(SECURITY_HEADERS)
    return response


def target_of(token: str) -> LinkTarget | None:
    try:
        target = read(token)
    except InvalidToken:
        return None
    g.address_language = target.address.language
    return target


def invalid_link() -> ResponseReturnValue:
    return render_template("unsubscribe/invalid.html"), 404


def controller() -> str:
    return current_app.config["CONTROLLER_NAME"] or gettext("the sender")


def masked(email: str | None) -> str:
    """``m•••@yritys.fi``: enough for the person to recognise their address, no more."""
    if not email:
        return "•••"
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


@bp.route("/u/<token>", methods=["GET", "HEAD"])
def confirm(token: str) -> ResponseReturnValue:
    target = target_of(token)
    if target is None:
        return invalid_link()
    return render_template(
        "unsubscribe/confirm.html",
        token=token,
        target=target,
        shown_address=masked(target.address.email),
        controller=controller(),
    )


@bp.post("/u/<token>")
def unsubscribe(token: str) -> ResponseReturnValue:
    # A POST without the page's own ``choice`` is a mail client's one-click, however its body
    # is encoded: the RFC's multipart example, as printed, does not even parse (R-OC-5).
    if request.form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE or "choice" not in request.form:
        return one_click(token)
    target = target_of(token)
    if target is None:
        return invalid_link()
    everything = request.form.get("choice") == "all" or target.mailing_list is None
    scope = leave(target, everything=everything, source="link")
    db.session.commit()
    return render_done(token, target, scope)


def one_click(token: str) -> ResponseReturnValue:
    """RFC 8058: suppress on the link's list (everywhere for an all-mail link), commit, then
    answer 200 with no redirect; a repeat answers the same and changes nothing (R-OC-6, R-OC-8).
    The hot path of a post-campaign burst, so it reads and writes by id in two statements."""
    try:
        ids = decode(token)
    except InvalidToken:
        return invalid_link()
    with direct_transaction() as transaction:
        found = suppressions.suppress_by_link(
            transaction, ids.address_id, ids.list_id, reason="unsubscribed", source="one-click"
        )
    if not found:
        return invalid_link()
    return Response("Unsubscribed.\n", status=200, mimetype="text/plain")


def leave(target: LinkTarget, *, everything: bool, source: str) -> str:
    """Suppress the link's address on its list, or everywhere (a GDPR Art. 21 objection)."""
    scope = GLOBAL_SCOPE if everything else target.mailing_list.slug
    reason = "objected" if everything and source == "link" else "unsubscribed"
    if target.address.email is not None:
        suppressions.suppress(
            target.address.email, reason=reason, source=source, scope=scope, actor=source
        )
    return scope


def render_done(token: str, target: LinkTarget, scope: str) -> ResponseReturnValue:
    left = None if scope == GLOBAL_SCOPE else target.mailing_list
    return render_template(
        "unsubscribe/done.html",
        token=token,
        scope=scope,
        left=left,
        controller=controller(),
        answers=suppressions.FEEDBACK_ANSWERS,
    )


@bp.post("/u/<token>/feedback")
def feedback(token: str) -> ResponseReturnValue:
    target = target_of(token)
    if target is None:
        return invalid_link()
    answer, scope = request.form.get("answer", ""), request.form.get("scope", "")
    if target.address.email and answer in suppressions.FEEDBACK_ANSWERS:
        try:
            suppressions.record_feedback(
                target.address.email, scope=scope, answer=answer, actor="link"
            )
            db.session.commit()
        except suppressions.SuppressionError:
            db.session.rollback()
    return render_template("unsubscribe/thanks.html", controller=controller())


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str) -> ResponseReturnValue:
    target = target_of(token)
    if target is None:
        return invalid_link()
    outcome = None
    if request.method == "POST":
        outcome = apply_preferences(target, request.form)
    return render_preferences(token, target, outcome)


def apply_preferences(target: LinkTarget, form: dict) -> str:
    """Bring the suppressions in line with the form; "saved", or "refused" when a choice
    could not be made here (a complaint or bounce is the controller's to lift)."""
    email = target.address.email
    if email is None:
        return "saved"
    wanted = {
        slug: slug in form.getlist("lists")
        for slug in db.session.scalars(db.select(MailingList.slug))
    }
    if form.get("action") == "resubscribe":
        wanted = {form.get("scope", GLOBAL_SCOPE): True}
    else:
        wanted[GLOBAL_SCOPE] = form.get("stop_all") != "yes"
    refused = False
    for scope, receive in wanted.items():
        refused |= not set_receiving(email, scope, receive)
    db.session.commit()
    return "refused" if refused else "saved"


def set_receiving(email: str, scope: str, receive: bool) -> bool:
    """Make ``scope`` receive or not; False when the person may not undo what is there."""
    currently_suppressed = any(
        row.scope == scope and row.is_active() for row in suppressions.suppressions_for(email)
    )
    if receive and currently_suppressed:
        try:
            suppressions.resubscribe(email, scope=scope, actor="preferences")
        except suppressions.LiftRefused:
            return False
    elif not receive and not currently_suppressed:
        reason = "objected" if scope == GLOBAL_SCOPE else "unsubscribed"
        suppressions.suppress(
            email, reason=reason, source="preferences", scope=scope, actor="preferences"
        )
    return True


def render_preferences(token: str, target: LinkTarget, outcome: str | None) -> ResponseReturnValue:
    email = target.address.email
    active = (
        {row.scope for row in suppressions.suppressions_for(email) if row.is_active()}
        if email
        else {GLOBAL_SCOPE}
    )
    lists = db.session.scalars(db.select(MailingList).order_by(MailingList.name)).all()
    return render_template(
        "unsubscribe/preferences.html",
        token=token,
        shown_address=masked(email),
        lists=lists,
        suppressed=active,
        controller=controller(),
        outcome=outcome,
    )
