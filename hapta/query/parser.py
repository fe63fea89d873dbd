"""Recursive-descent parser for the filter language.

    expr       := and ( "||" and )*
    and        := unary ( "&&" unary )*
    unary      := "!" unary | "(" expr ")" | comparison
    comparison := operand OP operand | operand "in" ( list | field ) | field "@@" string
    operand    := field | @var | string | number | true | false | null
    list       := "[" ( value ( "," value )* )? "]"

`!` binds tighter than `&&`; since operands can never be boolean expressions, `!a = 1` can only
mean `!(a = 1)`. Recursion only happens through `!` and `(`, both counted against MAX_DEPTH, so
hostile input hits a FilterError long before Python's recursion limit.
"""
from __future__ import annotations

from .ast import SEARCH, And, Compare, Field, Literal, Node, Not, Operand, Or, Var
from .errors import FilterError
from .lexer import Token, tokenize
from .memo import SizedMemo, filter_bytes

MAX_DEPTH = 32
MAX_TERMS = 256
MAX_LIST = 500


# Parsed filters, bounded by what they weigh: the same filters and rules recur on every request, but clients may
# also send thousands of distinct 4 KB ones.
PARSE_CACHE_BYTES = 8 << 20
_parsed = SizedMemo(PARSE_CACHE_BYTES)


def parse(text: str) -> Node:
    """Parse filter text into an unbound AST, or raise FilterError.

    Cached because the same filters and rules recur on every request; the AST is immutable, so
    sharing it is safe. An empty (all-whitespace) filter is an error here: callers decide what
    "no filter" means.
    """
    if not isinstance(text, str):
        raise FilterError("filter must be a string")
    node = _parsed.get(text)
    if node is None:
        node = _Parser(tokenize(text)).parse_all()
        _parsed.put(text, node, filter_bytes(text))
    return node


def _describe(token: Token) -> str:
    if token.type == "end":
        return "end of filter"
    if token.type == "field":
        return f"'{'.'.join(token.value)}'"
    if token.type == "var":
        return f"'@{token.value}'"
    if token.type == "value":
        return "string" if isinstance(token.value, str) else "value"
    return f"'{token.value}'"


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.terms = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, expected: str | None = None) -> FilterError:
        message = f"unexpected {_describe(self.token)} at {self.token.pos}"
        return FilterError(f"{message}, expected {expected}" if expected else message)

    def parse_all(self) -> Node:
        node = self.expr()
        if self.token.type != "end":
            raise self.fail()
        return node

    def expr(self) -> Node:
        items = [self.conjunction()]
        while self.token.type == "||":
            self.advance()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.unary()]
        while self.token.type == "&&":
            self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        if self.token.type not in ("!", "("):
            return self.comparison()
        opener = self.advance()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter is nested too deeply at {opener.pos} (at most {MAX_DEPTH} levels)")
        if opener.type == "!":
            node: Node = Not(self.unary())
        else:
            node = self.expr()
            if self.token.type != ")":
                raise self.fail("')'")
            self.advance()
        self.depth -= 1
        return node

    def comparison(self) -> Compare:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(f"filter has too many conditions at {self.token.pos} (at most {MAX_TERMS})")
        left = self.operand()
        if self.token.type != "op":
            raise self.fail("an operator")
        operator = self.advance()
        op = operator.value
        if op == SEARCH:
            return self.search(left, operator.pos)
        if op == "in":
            return Compare(left, op, self.in_target())
        if self.token.type == "[":
            raise self.fail("a value (lists are only allowed after 'in')")
        return Compare(left, op, self.operand())

    def search(self, left: Operand, at: int) -> Compare:
        """`field @@ "words"`: what is searched is a field, what for a string (never a field or a variable: the
        words are the client's, the text the record's)."""
        if not isinstance(left, Field):
            raise FilterError(f"'@@' at {at} needs a field on its left (field @@ \"words\")")
        if self.token.type != "value" or not isinstance(self.token.value, str):
            raise self.fail("a string of words to search for after '@@'")
        return Compare(left, SEARCH, Literal(self.advance().value))

    def operand(self) -> Operand:
        token = self.token
        if token.type == "field":
            self.advance()
            return Field(token.value)
        if token.type == "var":
            self.advance()
            return Var(token.value)
        if token.type == "value":
            self.advance()
            return Literal(token.value)
        raise self.fail("a field or value")

    def in_target(self) -> Operand:
        if self.token.type == "field":
            return self.operand()
        if self.token.type != "[":
            raise self.fail("a list after 'in'")
        self.advance()
        values: list = []
        while self.token.type != "]":
            if values:
                if self.token.type != ",":
                    raise self.fail("',' or ']'")
                self.advance()
            if self.token.type != "value":
                raise self.fail("a value")
            if len(values) == MAX_LIST:
                raise FilterError(f"list is too long at {self.token.pos} (at most {MAX_LIST} items)")
            values.append(self.advance().value)
        self.advance()
        return Literal(tuple(values))
