"""English and Japanese for the governance report and pages: one dict, ``key -> (en, ja)``.

The requirement texts themselves (titles, controls, gaps) are in ``data/crossmap.yaml``.
``tests/governance/test_report.py`` checks that every key has both languages.
"""

from __future__ import annotations

from typing import Any

LANGS = ("en", "ja")

LABELS: dict[str, tuple[str, str]] = {
    # report and page chrome
    "report_title": ("Compliance report: AI governance evidence",
                     "コンプライアンス・レポート：AIガバナンスの証跡"),
    "report_subtitle": ("METI AI Guidelines for Business, cross-mapped to the OECD AI "
                        "Principles, the Hiroshima Process Code of Conduct and the EU AI Act",
                        "AI事業者ガイドライン（経済産業省・総務省）と、OECD AI原則、"
                        "広島プロセス国際行動規範、EU AI法との対応"),
    "period": ("Period", "対象期間"),
    "generated_at": ("Generated", "作成日時"),
    "time_zone": ("Time zone", "タイムゾーン"),
    "policies": ("Policies loaded", "読み込まれたポリシー"),
    "systems": ("AI systems", "AIシステム"),
    "notes": ("Notes on this report", "本レポートについての注記"),
    "summary": ("Summary", "概要"),
    "summary_rows": ("Requirements", "要件"),
    "summary_evidence": ("with evidence from the store", "ストアからの証跡あり"),
    "summary_gaps": ("where the organisation must act itself", "組織自身の対応が必要"),
    "summary_due": ("systems due for re-assessment", "再評価が必要なシステム"),
    "principles": ("Common guiding principles", "共通の指針"),
    "requirements": ("Key requirements", "主な要求事項"),
    "requirement": ("Requirement", "要件"),
    "source": ("Source", "出典"),
    "control": ("Control in guardrail", "guardrail の対応機能"),
    "configuration": ("Configuration", "設定"),
    "evidence": ("Evidence (counted from the store over the period)",
                 "証跡（対象期間についてストアから集計）"),
    "cross_map": ("Cross-map", "対応関係"),
    "gap": ("The organisation's own part", "組織自身が行うべきこと"),
    "no_gap": ("Covered by the product.", "製品で対応しています。"),
    "oecd": ("OECD AI Principles", "OECD AI原則"),
    "hiroshima": ("Hiroshima Process Code of Conduct", "広島プロセス国際行動規範"),
    "eu_ai_act": ("EU AI Act", "EU AI法"),
    "no_counterpart": ("no direct counterpart", "直接の対応なし"),
    "not_recorded": ("Not recorded", "記録なし"),
    "none_configured": ("none configured", "設定なし"),
    "yes": ("yes", "はい"),
    "no": ("no", "いいえ"),
    "print": ("Print / save as PDF", "印刷 / PDFとして保存"),
    "from": ("From", "開始日"),
    "to": ("To", "終了日"),
    "language": ("Language", "言語"),
    "show": ("Show", "表示"),
    "placeholder": ("PLACEHOLDER: no inventory file", "仮登録：インベントリファイルなし"),
    "id": ("ID", "ID"),
    "name": ("Name", "名称"),
    "stage": ("Lifecycle stage", "ライフサイクル段階"),
    "roles": ("Roles", "役割"),
    "owner": ("Accountable owner", "責任者"),
    "risk_level": ("Risk level", "リスク区分"),
    "risk_rationale": ("Risk rationale", "リスク区分の根拠"),
    "capabilities": ("Capabilities", "能力"),
    "limitations": ("Limitations", "限界"),
    "intended_uses": ("Intended uses", "想定用途"),
    "prohibited_uses": ("Prohibited uses", "禁止用途"),
    "decision_logic": ("Decision logic", "判断ロジック"),
    "upstream_models": ("Upstream models", "上流モデル"),
    "governing_policies": ("Governing policies", "統制するポリシー"),
    "assessment": ("Current assessment", "現行の評価"),
    "reassessment": ("Re-assessment", "再評価"),
    "due": ("DUE", "要再評価"),
    "current": ("current", "評価は最新"),
    "drafts": ("Drafts awaiting approval", "承認待ちの草案"),
    "models_seen": ("Models seen answering", "応答したモデル"),
    "inventory_dir": ("Inventory directory", "インベントリのディレクトリ"),
    "systems_page_title": ("AI system inventory", "AIシステム・インベントリ"),
    "no_systems": ("No systems.", "システムはありません。"),
    "refused": ("Not allowed", "許可されていません"),
    "refused_text": ("Your role cannot see governance records.",
                     "あなたのロールではガバナンス記録を閲覧できません。"),
    "bad_period": ("Give the period as YYYY-MM-DD dates, from on or before to.",
                   "期間は YYYY-MM-DD 形式で、開始日を終了日以前にしてください。"),
    "sign_in": ("Sign in", "サインイン"),
    "report_link": ("Compliance report", "コンプライアンス・レポート"),
    "systems_link": ("AI systems", "AIシステム"),
    "review_link": ("Review queue", "レビューキュー"),
    # evidence labels
    "ev_interventions": ("Interventions (enforced)", "介入（実施）"),
    "ev_monitor": ("Would-be interventions of monitor-mode scanners (not enforced)",
                   "モニターモードのスキャナーによる介入相当（未実施）"),
    "ev_failures": ("Scanner failures and timeouts", "スキャナーの障害・タイムアウト"),
    "ev_decisions": ("Review decisions", "レビューの判断"),
    "ev_deciders": ("People who decided", "判断した人数"),
    "ev_system_decisions": ("Decided by the system (expired holds)",
                            "システムによる判断（期限切れの保留）"),
    "ev_time_to_decision": ("Time from incident to final decision",
                            "インシデントから最終判断までの時間"),
    "ev_holds": ("Held responses", "保留された応答"),
    "ev_incidents": ("Incidents of the period by review status",
                     "対象期間のインシデント（レビュー状況別）"),
    "ev_overdue": ("Open past the review SLA now", "現時点でレビューSLA超過の未処理"),
    "ev_labelled": ("Labelled outputs", "表示を付した出力"),
    "ev_labelled_note": ("guardrail keeps no per-response record of labelling, so the number "
                         "of labelled outputs is not recorded. The labelling configuration "
                         "(see Configuration) applies to every response under the policy.",
                         "guardrail は応答ごとの表示の記録を保持しないため、"
                         "表示を付した出力の件数は記録されていません。"
                         "表示の設定（「設定」参照）は、そのポリシーの下のすべての応答に適用されます。"),
    "ev_disclosure_policies": ("Policies disclosing AI generation (headers and annotation)",
                               "AI生成を開示するポリシー（ヘッダーと注記）"),
    "ev_notice_policies": ("Policies adding a visible notice to the text",
                           "テキストに目に見える表示を付けるポリシー"),
    "ev_signing_policies": ("Policies signing images (C2PA)",
                            "画像に署名するポリシー（C2PA）"),
    "ev_assessments": ("Systems with a current approved assessment",
                       "承認済みの最新評価があるシステム"),
    "ev_due": ("Systems due for re-assessment", "再評価が必要なシステム"),
    "ev_models_seen": ("Answering models recorded", "記録された応答モデル"),
    "ev_systems": ("Systems in the inventory", "インベントリのシステム"),
    "ev_owners": ("Systems with a named accountable owner", "責任者が指名されているシステム"),
    "ev_placeholders": ("Placeholder systems (no inventory file)",
                        "仮登録のシステム（インベントリファイルなし）"),
    "ev_redress": ("Redress requests received", "受け付けた救済申立て"),
    "ev_redress_answered": ("Redress requests answered", "回答した救済申立て"),
    "ev_redress_time": ("Time to answer", "回答までの時間"),
    "ev_redress_none": ("The redress table does not exist in this store.",
                        "このストアには救済申立てのテーブルがありません。"),
    "ev_redress_links": ("Incidents with a redress link", "救済申立てが紐付いたインシデント"),
    "ev_lifecycle": ("Incidents of the period by lifecycle status",
                     "対象期間のインシデント（ライフサイクル状況別）"),
    "ev_serious": ("Flagged serious", "重大と判定"),
    "ev_lifecycle_none": ("The incident lifecycle table does not exist in this store.",
                          "このストアにはインシデントのライフサイクルのテーブルがありません。"),
    "ev_chain": ("Records sealed in the hash chain (all time)",
                 "ハッシュチェーンに封印された記録（全期間）"),
    "ev_chain_note": ("Verify with `guardrail incidents verify`; export with `guardrail "
                      "incidents export`.",
                      "`guardrail incidents verify` で検証、`guardrail incidents export` で"
                      "エクスポートできます。"),
    "ev_incidents_period": ("Incidents recorded in the period", "対象期間に記録されたインシデント"),
    "ev_people": ("People with an account, by role", "アカウントを持つ人（ロール別）"),
    "ev_tokens": ("Live personal API tokens", "有効な個人APIトークン"),
    "ev_client_keys": ("Client keys (configured + stored)", "クライアントキー（設定＋保存）"),
    "ev_admin_key": ("Bootstrap admin key configured", "初期管理キーの設定"),
    "ev_dev_mode": ("Dev mode (any client key accepted, loopback only)",
                    "開発モード（任意のクライアントキーを受理、ループバックのみ）"),
    "ev_corpora": ("Registered corpora / works", "登録済みコーパス／著作物"),
    "ev_none": ("No evidence from the product", "製品からの証跡なし"),
    "ev_none_note": ("guardrail records nothing for this requirement; keep your own records.",
                     "guardrail はこの要件について何も記録しません。"
                     "組織自身で記録を保管してください。"),
    "median": ("median", "中央値"),
    "p90": ("90th percentile", "90パーセンタイル"),
    "max": ("max", "最大"),
    "count": ("count", "件数"),
    # statuses and reasons
    "st_open": ("open", "未処理"),
    "st_escalated": ("escalated", "エスカレーション"),
    "st_awaiting_second": ("awaiting a second reviewer", "2人目の承認待ち"),
    "st_released": ("released", "解放"),
    "st_rejected": ("rejected", "却下"),
    "st_not_required": ("no review needed", "レビュー不要"),
    "st_pending": ("pending", "保留中"),
    "st_expired": ("expired", "期限切れ"),
    "st_received": ("received", "受付"),
    "st_answered": ("answered", "回答済み"),
    "st_in_review": ("in review", "確認中"),
    "rs_no_approved_assessment": ("no approved assessment", "承認済みの評価なし"),
    "rs_policy_not_assessed": ("a governing policy was not assessed",
                               "統制するポリシーが評価されていない"),
    "rs_policy_changed": ("a governing policy changed since the assessment",
                          "評価後に統制するポリシーが変更された"),
    "rs_model_not_assessed": ("a model answered that the assessment did not cover",
                              "評価の対象外のモデルが応答した"),
    # configuration labels
    "cf_scanner": ("Scanner", "スキャナー"),
    "cf_fail_mode": ("On scanner error", "スキャナー障害時"),
    "cf_review": ("Review", "レビュー"),
    "cf_labelling": ("Labelling", "表示"),
    "cf_retention": ("Retention", "保存期間"),
    "cf_auth": ("Access control", "アクセス制御"),
    "cf_owner": ("Remediation owner", "是正担当"),
    "cf_assessments": ("Assessments", "評価"),
    "cf_policy": ("Policy", "ポリシー"),
    "cf_system": ("System", "システム"),
    "version": ("Version", "バージョン"),
    "ev_holds_expired": ("Held responses decided by the system (expired)",
                         "システムが判断した保留応答（期限切れ）"),
    # configuration values
    "cv_policy": ("version {version}; system {system}", "バージョン {version}、システム {system}"),
    "cv_scanner": ("{action}, threshold {threshold}, {enforcement}",
                   "{action}、しきい値 {threshold}、{enforcement}"),
    "cv_fail_mode": ("{mode} → {action}; timeout {timeout} ms",
                     "{mode} → {action}、タイムアウト {timeout} ミリ秒"),
    "cv_review": ("reviewed: {route}; SLA {sla} min; four eyes: {four}; hold expiry {expiry} "
                  "min → {on_expiry}",
                  "レビュー対象：{route}、SLA {sla} 分、2名承認：{four}、保留の期限 {expiry} 分 → "
                  "{on_expiry}"),
    "cv_labelling": ("disclosure {disclosure}; headers {headers}; visible notice {notice}; "
                     "images signed (C2PA) {sign}",
                     "開示 {disclosure}、ヘッダー {headers}、目に見える表示 {notice}、"
                     "画像への署名（C2PA） {sign}"),
    "cv_retention": ("{days} days; excerpt {chars} characters",
                     "{days} 日、抜粋 {chars} 文字"),
    "cv_floor": ("{days} days (floor)", "{days} 日（下限）"),
    "cv_auth": ("dev mode {dev}; admin key {admin}; configured client keys {keys}; sign-in "
                "lasts {ttl} h (idle {idle} min); sign-in limit {fails} failures per {window} s",
                "開発モード {dev}、管理キー {admin}、設定済みクライアントキー {keys}、"
                "サインインの有効期間 {ttl} 時間（無操作 {idle} 分）、"
                "サインイン失敗の上限 {window} 秒あたり {fails} 回"),
    "cv_assessments": ("{dir}: {n} file(s); drafts: {drafts}",
                       "{dir}：{n} 件、草案：{drafts}"),
    "cv_system": ("{name}; {stage}; risk {risk}; owner {owner} ({title})",
                  "{name}、{stage}、リスク区分 {risk}、責任者 {owner}（{title}）"),
    # dynamic gaps
    "gap_placeholder": ("No inventory: describe each AI system in {dir}.",
                        "インベントリがありません。{dir} に各AIシステムを記載してください。"),
    "gap_owner": ("Name an accountable owner for: {systems}.",
                  "次のシステムの責任者を指名してください：{systems}。"),
    "gap_due": ("Re-assess: {systems}.", "再評価してください：{systems}。"),
    "gap_no_notice": ("No policy adds a visible AI notice to the text.",
                      "テキストに目に見えるAI表示を付けるポリシーがありません。"),
    "gap_no_ip": ("No policy runs the IP scanner, or no corpus is registered.",
                  "IPスキャナーを使うポリシーがないか、コーパスが登録されていません。"),
    "gap_dev_mode": ("Dev mode is on: configure client keys.",
                     "開発モードです。クライアントキーを設定してください。"),
}

# enum values shown as words
STAGES = {"design": ("design", "設計"), "development": ("development", "開発"),
          "deployment": ("deployment", "導入"), "operation": ("operation", "運用"),
          "decommissioned": ("decommissioned", "廃止")}
RISKS = {"minimal": ("minimal", "最小"), "limited": ("limited", "限定的"),
         "high": ("high", "高"), "unacceptable": ("unacceptable", "許容できない"),
         "low": ("low", "低"), "medium": ("medium", "中")}
ROLES = {"ai_developer": ("AI developer", "AI開発者"), "ai_provider": ("AI provider", "AI提供者"),
         "ai_business_user": ("AI business user", "AI利用者"),
         "provider": ("provider (EU)", "提供者（EU）"), "deployer": ("deployer (EU)",
                                                                "導入者（EU）")}
GROUPS = {"principle": LABELS["principles"], "requirement": LABELS["requirements"]}


def t(key: str, lang: str, **fmt: Any) -> str:
    pair = LABELS[key]
    text = pair[1] if lang == "ja" else pair[0]
    return text.format(**fmt) if fmt else text


def word(table: dict[str, tuple[str, str]], value: str, lang: str) -> str:
    pair = table.get(value)
    if pair is None:
        return value
    return pair[1] if lang == "ja" else pair[0]


def status_word(status: str, lang: str) -> str:
    key = f"st_{status}"
    return t(key, lang) if key in LABELS else status
