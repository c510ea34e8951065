"""What the redress and lifecycle pages share: templates, the page language, the words.

The language is ``?lang=ja|en`` where given, else the person's saved one (staff pages), else
the browser's ``Accept-Language`` (by quality), else Japanese for a bare ``ja`` region, else
English. The words are in :data:`TEXT` (two languages, one table: nothing to compile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

LOCALES = ("en", "ja")
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "redress_title": "Contest an AI output",
        "redress_intro": "If an answer produced by our AI system affected you, or you think a "
        "response was wrongly held or blocked, tell us here. A person reviews every request.",
        "response_id": "Response id (hr_..., if you have one)",
        "incident_id": "Incident id (inc_..., if you have one)",
        "request_id": "Request id (req_..., if you have one)",
        "what": "What is wrong? (your own words; at most 4000 characters)",
        "contact": "How can we reach you? (optional; only our reviewers see it)",
        "send": "Send",
        "privacy": "We keep what you write to handle your request and delete it when our "
        "retention period ends.",
        "received_title": "We received your request",
        "your_id": "Your acknowledgement id",
        "keep_id": "Keep this id: it is the only way to see the status and our answer. "
        "We cannot look it up for you.",
        "check": "Check the status",
        "status_title": "Status of your request",
        "lookup": "Look up",
        "ack_label": "Acknowledgement id (rd_...)",
        "not_found": "No request has this id. Check that you copied it whole.",
        "status": "Status",
        "received_at": "Received",
        "answered_at": "Answered",
        "answer": "Our answer",
        "received": "Received: waiting for a reviewer",
        "in_review": "In review: a person is looking at it",
        "answered": "Answered",
        "limited": "Too many requests from your address. Try again in {wait} seconds.",
        "csrf": "The form was out of date. Reload the page and send it again.",
        "invalid": "Say what you contest: a response id, an incident id, a request id or a "
        "description.",
        "language": "日本語",
        "lifecycle_title": "Incident lifecycle and reporting clocks",
        "overdue": "Overdue reports",
        "incident": "Incident",
        "lc_status": "Lifecycle",
        "owner": "Owner",
        "serious": "Serious",
        "clocks": "Reporting clocks",
        "due": "due",
        "reported": "reported",
        "none": "No incident is in the lifecycle yet.",
        "forbidden": "Your role does not allow this page (admin or compliance only).",
    },
    "ja": {
        "redress_title": "AIの出力に対する異議申立て",
        "redress_intro": "当社のAIシステムの回答によって影響を受けた方、または回答が誤って保留・"
        "遮断されたと考える方は、こちらからお知らせください。すべての申立てを担当者が確認します。",
        "response_id": "レスポンスID(hr_... お持ちの場合)",
        "incident_id": "インシデントID(inc_... お持ちの場合)",
        "request_id": "リクエストID(req_... お持ちの場合)",
        "what": "問題の内容(ご自身の言葉で、4000文字まで)",
        "contact": "連絡先(任意。担当者のみが閲覧します)",
        "send": "送信",
        "privacy": "ご記入の内容は申立ての対応のために保管し、保存期間の終了後に削除します。",
        "received_title": "申立てを受け付けました",
        "your_id": "受付番号",
        "keep_id": "この番号を保管してください。状況と回答の確認にはこの番号だけが使えます。"
        "当社が代わりに検索することはできません。",
        "check": "状況を確認する",
        "status_title": "申立ての状況",
        "lookup": "確認",
        "ack_label": "受付番号(rd_...)",
        "not_found": "この番号の申立ては見つかりません。番号全体をコピーしたかご確認ください。",
        "status": "状況",
        "received_at": "受付日時",
        "answered_at": "回答日時",
        "answer": "当社からの回答",
        "received": "受付済み:担当者の確認待ち",
        "in_review": "確認中:担当者が確認しています",
        "answered": "回答済み",
        "limited": "お使いのアドレスからの要求が多すぎます。{wait}秒後にもう一度お試しください。",
        "csrf": "フォームの有効期限が切れました。ページを再読み込みして、もう一度送信して"
        "ください。",
        "invalid": "異議の対象(レスポンスID、インシデントID、リクエストID、または内容の説明)を"
        "入力してください。",
        "language": "English",
        "lifecycle_title": "インシデントのライフサイクルと報告期限",
        "overdue": "期限切れの報告",
        "incident": "インシデント",
        "lc_status": "段階",
        "owner": "担当者",
        "serious": "重大",
        "clocks": "報告期限",
        "due": "期限",
        "reported": "報告済み",
        "none": "ライフサイクル中のインシデントはまだありません。",
        "forbidden": "このページを閲覧する権限がありません(管理者またはコンプライアンス担当のみ)。",
    },
}


def negotiate(request: Request, saved: str | None = None) -> str:
    asked = request.query_params.get("lang")
    if asked in LOCALES:
        return asked
    if saved in LOCALES:
        return saved
    best, best_q = "en", 0.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, q = part.strip().partition(";q=")
        lang = tag.split("-")[0].strip().lower()
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        if lang in LOCALES and weight > best_q:
            best, best_q = lang, weight
    return best


def render(request: Request, name: str, locale: str, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> Response:
    other = "ja" if locale == "en" else "en"
    switch = request.url.include_query_params(lang=other)
    resp = templates.TemplateResponse(request, name, {
        "t": TEXT[locale], "locale": locale, "other": other,
        "switch": f"{switch.path}?{switch.query}", **context},
        status_code=status_code)
    resp.headers["Content-Language"] = locale
    resp.headers["Vary"] = "Accept-Language, Cookie"
    # an acknowledgement id may be in the URL: never sent on, never cached
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers.update(headers or {})
    return resp
