"""Why an operator alert was raised, in each reader's words.

The price refresh, the billing reconciler, the batch-job meter and the DenyFunction alert operators
with causes in fields (a `code` and its facts: model ids, Regions, amounts), never with sentences:
each reader's language words them here. English is also what the audit, the logs and the price versions keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from budgetkeeper.notify.locale import WORDS, money, percent

Cause = Mapping[str, str]  # {"code": ..., fact: value, ...}

CAUSES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "no_price_rows": "the refresh yielded no price rows",
        "price_jump": "{model} in {region} ({tier}) {kind}: {old} -> {new} USD per 1M "
        "moves by more than a factor of {factor}",
        "metered_without_price": "{model} in {region} was metered in the last 30 days and has no price in it",
        "billed_not_metered": "{day}: billed but never metered",
        "billing_drift": "{day}: metered and billed are more than {percent} and {min_usd} apart",
        "no_creator": "no creator record: its {call} call was never received",
        "manifest_unreadable": "{manifest} is unreadable: {error}",
        "manifest_not_whole": "{manifest} has counts that are not whole numbers: {counts}",
        "outputs_unreadable": "the outputs at {where} cannot be read ({error})",
        "more_tokens_than_manifest": "its records count more tokens than {manifest}",
        "session_policy_not_ours": "{policy_arn} of role {role} read back as {problems}; it was detached "
        "and deleted, and the role's sessions are not denied until it is written again (CloudTrail's "
        "`CreatePolicyVersion` and `SetDefaultPolicyVersion` show who changed it)",
        "member_role_unreachable": "the {role} role of account {account} cannot be assumed ({error}); "
        "not yet denied or lifted there as their records say: {entries}. They stay recorded and are "
        "tried again at every reconcile; you are reminded daily while the role cannot be assumed",
    },
    "es": {
        "no_price_rows": "la actualización no trajo ninguna fila de precios",
        "price_jump": "{model} en {region} ({tier}) {kind}: de {old} a {new} US$ por millón de tokens, "
        "cambia en más de un factor {factor}",
        "metered_without_price": "{model} en {region} se midió en los últimos 30 días y no tiene precio "
        "en ella",
        "billed_not_metered": "{day}: facturado pero nunca medido",
        "billing_drift": "{day}: lo medido y lo facturado difieren en más del {percent} y de {min_usd}",
        "no_creator": "no hay registro de quién lo creó: nunca se recibió su llamada {call}",
        "manifest_unreadable": "no se puede leer {manifest}: {error}",
        "manifest_not_whole": "{manifest} tiene recuentos que no son números enteros: {counts}",
        "outputs_unreadable": "no se pueden leer las salidas en {where} ({error})",
        "more_tokens_than_manifest": "sus registros cuentan más tokens que {manifest}",
        "session_policy_not_ours": "{policy_arn} del rol {role} se leyó así: {problems}; se desvinculó y "
        "se eliminó, y las sesiones del rol no quedan denegadas hasta que se escriba de nuevo "
        "(`CreatePolicyVersion` y `SetDefaultPolicyVersion` en CloudTrail muestran quién la cambió)",
        "member_role_unreachable": "no se puede asumir el rol {role} de la cuenta {account} ({error}); "
        "aún no se deniega ni se levanta allí lo que dicen sus registros: {entries}. Siguen registrados "
        "y se reintentan en cada conciliación; se le recuerda a diario mientras no se pueda asumir el rol",
    },
}

# Token kinds as a price change names them.
TOKEN_KINDS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "input": "input",
        "output": "output",
        "cache_read": "cache read",
        "cache_write_5m": "cache write (5 min)",
        "cache_write_1h": "cache write (1 h)",
    },
    "es": {
        "input": "entrada",
        "output": "salida",
        "cache_read": "lectura de caché",
        "cache_write_5m": "escritura de caché (5 min)",
        "cache_write_1h": "escritura de caché (1 h)",
    },
}


def cause_text(cause: Cause, language: str) -> str:
    """One cause in `language` (a language without words for it reads English)."""
    if language not in CAUSES:
        language = "en"
    facts = {name: value for name, value in cause.items() if name != "code"}
    words = WORDS[language]
    for name in ("old", "new", "factor"):  # rates per million tokens: exact, in the reader's marks
        if name in facts:
            facts[name] = str(facts[name]).replace(".", words.decimal_mark)
    if "min_usd" in facts:
        facts["min_usd"] = money(facts["min_usd"], language) or ""
    if "percent" in facts:
        facts["percent"] = percent(facts["percent"], language) or ""
    if "kind" in facts:
        facts["kind"] = TOKEN_KINDS[language].get(facts["kind"], facts["kind"])
    return CAUSES[language][cause["code"]].format(**facts)


def causes_text(causes: Sequence[Cause] | None, language: str) -> str | None:
    """Every cause, in `language`, one after the other."""
    return "; ".join(cause_text(cause, language) for cause in causes) if causes else None


def cause(code: str, **facts: object) -> dict[str, str]:
    """A cause as an event carries it: its code and its facts, as strings."""
    if code not in CAUSES["en"]:
        raise ValueError(f"no words for the cause {code!r}: add it to budgetkeeper.notify.causes")
    return {"code": code, **{name: str(value) for name, value in facts.items()}}
