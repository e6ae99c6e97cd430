"""The run filter language.

Grammar (keywords are case-insensitive)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | compare
    compare := field op value
             | field ["not"] "in" "(" value ("," value)* ")"
             | field "is" ["not"] "null"
    field   := ("metrics" | "params" | "tags" | "attributes") "." name | attribute
    name    := word | `any text` | "any text"
    op      := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "like" | "ilike"
    value   := number | 'string' | "string"

Examples: ``metrics.acc > 0.9 and params.model = 'rf' and tags.team = 'ml'``,
``status = 'finished' and (metrics.f1 >= 0.8 or tags.keep = 'yes')``.
Params and tags compare as text; metrics and time attributes as numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import FilterSyntaxError

__all__ = ["ATTRIBUTES", "And", "Compare", "Node", "Not", "Or", "OrderKey", "parse_filter", "parse_order_by"]

#: attribute name in the language -> column name on the runs table
ATTRIBUTES: dict[str, str] = {
    "id": "id",
    "run_id": "id",
    "name": "name",
    "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "user": "user",
    "host": "host",
    "git_commit": "git_commit",
    "parent_run_id": "parent_run_id",
    "experiment_id": "experiment_id",
}
_NUMERIC_ATTRIBUTES = {"start_time", "end_time", "experiment_id"}
_ENTITIES = {"metrics": "metric", "metric": "metric", "params": "param", "param": "param",
             "tags": "tag", "tag": "tag", "attributes": "attr", "attribute": "attr", "attr": "attr"}


@dataclass(frozen=True)
class Compare:
    entity: str  # metric | param | tag | attr
    key: str  # metric/param/tag key, or runs column for attr
    op: str  # = != < <= > >= like ilike in notin isnull notnull
    value: object


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | And | Or | Not

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<field>[A-Za-z_]\w*\.(?:`[^`]+`|"[^"]+"|[\w\-/:.]+))
  | (?P<word>[A-Za-z_]\w*)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(
                f"filter {text!r}: unexpected character {text[pos]!r} at position {pos}", position=pos
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


def _unquote(s: str) -> str:
    q = s[0]
    return s[1:-1].replace(q + q, q)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def error(self, expected: str) -> FilterSyntaxError:
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            pos, where = tok.pos, f"found {tok.text!r} at position {tok.pos}"
        else:
            pos = len(self.text)
            where = f"found the end of the filter at position {pos}"
        return FilterSyntaxError(
            f"filter {self.text!r}: expected {expected}, {where}. "
            "Example: metrics.acc > 0.9 and params.model = 'rf'",
            position=pos,
        )

    def peek_word(self) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i].kind == "word":
            return self.toks[self.i].text.lower()
        return None

    def take(self, kind: str, text: str | None = None) -> _Tok | None:
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            if tok.kind == kind and (text is None or tok.text.lower() == text):
                self.i += 1
                return tok
        return None

    def parse(self) -> Node:
        node = self.expr()
        if self.i != len(self.toks):
            raise self.error("'and', 'or' or the end of the filter")
        return node

    def expr(self) -> Node:
        items = [self.term()]
        while self.take("word", "or"):
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.take("word", "and"):
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self) -> Node:
        if self.take("word", "not"):
            return Not(self.factor())
        if self.take("punct", "("):
            node = self.expr()
            if not self.take("punct", ")"):
                raise self.error("')'")
            return node
        return self.compare()

    def field(self) -> tuple[str, str]:
        tok = self.take("field")
        if tok is not None:
            prefix, _, name = tok.text.partition(".")
            entity = _ENTITIES.get(prefix.lower())
            if entity is None:
                raise FilterSyntaxError(
                    f"filter {self.text!r}: unknown field prefix {prefix!r} at position {tok.pos}; "
                    "use metrics., params., tags. or attributes."
                )
            if name[0] in "`\"":
                name = name[1:-1]
            if entity == "attr":
                return "attr", self._attribute(name, tok.pos)
            return entity, name
        tok = self.take("word")
        if tok is not None and tok.text.lower() not in ("and", "or", "not", "in", "like", "ilike", "is"):
            return "attr", self._attribute(tok.text, tok.pos)
        if tok is not None:
            self.i -= 1
        raise self.error("a field such as metrics.acc, params.model, tags.team or status")

    def _attribute(self, name: str, pos: int) -> str:
        col = ATTRIBUTES.get(name.lower())
        if col is None:
            raise FilterSyntaxError(
                f"filter {self.text!r}: unknown attribute {name!r} at position {pos}; "
                f"known attributes: {', '.join(sorted(ATTRIBUTES))}"
            )
        return col

    def value(self, *, numeric: bool = True) -> object:
        tok = self.take("string")
        if tok is not None:
            return _unquote(tok.text)
        tok = self.take("number")
        if tok is not None:
            if not numeric:  # params and tags compare as text: keep what was written (1.10 stays "1.10")
                return tok.text
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        raise self.error("a number or a quoted string")

    def compare(self) -> Compare:
        entity, key = self.field()
        numeric = entity == "metric" or (entity == "attr" and key in _NUMERIC_ATTRIBUTES)
        if self.take("word", "is"):
            negate = bool(self.take("word", "not"))
            if not self.take("word", "null"):
                raise self.error("'null'")
            return Compare(entity, key, "notnull" if negate else "isnull", None)
        negate = bool(self.take("word", "not"))
        if self.take("word", "in"):
            if not self.take("punct", "("):
                raise self.error("'(' after 'in'")
            values = [self.value(numeric=numeric)]
            while self.take("punct", ","):
                values.append(self.value(numeric=numeric))
            if not self.take("punct", ")"):
                raise self.error("')' closing the 'in' list")
            if numeric and not all(isinstance(v, int | float) for v in values):
                raise FilterSyntaxError(
                    f"filter {self.text!r}: {entity} {key!r} is compared with {tuple(values)!r}; it needs numbers"
                )
            return Compare(entity, key, "notin" if negate else "in", tuple(values))
        if negate:
            raise self.error("'in' after 'not'")
        tok = self.take("op")
        if tok is not None:
            op = {"==": "=", "<>": "!="}.get(tok.text, tok.text)
        elif self.take("word", "like"):
            op = "like"
        elif self.take("word", "ilike"):
            op = "ilike"
        else:
            raise self.error("a comparison (=, !=, <, <=, >, >=, like, ilike, in, is null)")
        value = self.value(numeric=numeric)
        if numeric and op in ("like", "ilike"):
            raise FilterSyntaxError(f"filter {self.text!r}: {op!r} compares text; {entity} {key!r} is a number")
        if numeric and not isinstance(value, int | float):
            raise FilterSyntaxError(
                f"filter {self.text!r}: {entity} {key!r} is compared with {value!r}; it needs a number"
            )
        if not numeric and not isinstance(value, str):
            value = str(value)
        return Compare(entity, key, op, value)


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter string; None or blank means no filter.

    Raises:
        FilterSyntaxError: with the position and what was expected.
    """
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


@dataclass(frozen=True)
class OrderKey:
    entity: str  # metric | param | tag | attr
    key: str
    descending: bool


def parse_order_by(clauses: list[str] | str | None) -> list[OrderKey]:
    """Parse ``["metrics.acc DESC", "start_time"]``.

    Raises:
        FilterSyntaxError: an unknown field or direction.
    """
    if clauses is None:
        return []
    if isinstance(clauses, str):
        clauses = [c for c in clauses.split(",") if c.strip()]
    keys: list[OrderKey] = []
    for clause in clauses:
        parts = clause.strip().rsplit(None, 1)
        direction = "asc"
        if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
            text, direction = parts[0], parts[1].lower()
        else:
            text = clause.strip()
        p = _Parser(text)
        entity, key = p.field()
        if p.i != len(p.toks):
            raise FilterSyntaxError(
                f"order by {clause!r}: expected a field optionally followed by ASC or DESC, e.g. 'metrics.acc DESC'"
            )
        keys.append(OrderKey(entity, key, direction == "desc"))
    return keys
