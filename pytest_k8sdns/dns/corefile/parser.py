"""Corefile parser: server blocks and their plugins, with the Caddyfile rules CoreDNS reads them by
(snippets, imports, placeholders), and where each plugin sits in the text, for the editor."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pytest_k8sdns.errors import ConfigError

# The NodeLocal template (kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml) holds
# __PILLAR__X__ words that node-cache fills in; CoreDNS itself fills {$VAR} and {%VAR%}.
_PILLAR = re.compile(r"__PILLAR__[A-Z0-9_]*__")
CLUSTER_DOMAIN_PILLAR = "__PILLAR__DNS__DOMAIN__"
_DEFAULT_PORTS = {"dns": "53", "tls": "853", "quic": "853", "grpc": "443", "https": "443", "https3": "443"}
# Snippets may import snippets; the bound stops a cycle (coredns/caddy caddyfile/parse.go
# caps expansions at 1000 for the same reason).
_MAX_EXPANSIONS = 1000


@dataclass(frozen=True)
class Span:
    """Where a directive sits in the text it was read from: offsets, each end exclusive."""

    start: int  # its name's first character
    end: int  # after its last word, or after its block's '}'
    name_end: int
    args: tuple[tuple[int, int], ...]
    braces: tuple[int, int] | None  # from its '{' to after its '}'


@dataclass(frozen=True)
class Directive:
    """One plugin line: ``name args... { nested directives }``. ``span`` is set only when it was
    read literally (snippets not expanded), so that the offsets are its own."""

    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)
    line: int = 0
    span: Span | None = field(default=None, compare=False, repr=False)

    def find(self, name: str) -> list[Directive]:
        """The nested directives called ``name``."""
        return [d for d in self.block if d.name == name]

    def has(self, name: str) -> bool:
        return any(d.name == name for d in self.block)


@dataclass(frozen=True)
class ServerBlock:
    """A server block: its keys (``.:53``, ``cluster.local in-addr.arpa``) and its plugins."""

    keys: list[str]
    directives: list[Directive]
    line: int = 0

    @property
    def label(self) -> str:
        return " ".join(self.keys)

    @property
    def zones(self) -> list[str]:
        """The keys' zones, lower-case and absolute (``.``, ``cluster.local.``)."""
        return [split_key(k)[0] for k in self.keys]

    def find(self, name: str) -> list[Directive]:
        """The top-level directives called ``name``."""
        return [d for d in self.directives if d.name == name]

    def has(self, name: str) -> bool:
        return any(d.name == name for d in self.directives)


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    end_line: int
    src: str
    starts_line: bool = False
    start: int = 0  # offsets in the text it was read from
    end: int = 0


def _at(tok: _Token) -> str:
    """Where a token came from, for error messages: ``Corefile line 3`` or an imported file's."""
    return f"{tok.src or 'Corefile'} line {tok.line}"


def is_placeholder(text: str) -> bool:
    """True for words that are filled in later: ``{$VAR}``, ``{%VAR%}``, ``__PILLAR__X__``."""
    return "{$" in text or "{%" in text or bool(_PILLAR.search(text))


def split_key(key: str) -> tuple[str, str]:
    """A server block key as (zone, port): ``dns://.:53`` -> (``.``, ``53``)."""
    scheme = "dns"
    if "://" in key:
        scheme, key = key.split("://", 1)
    port = _DEFAULT_PORTS.get(scheme.lower(), "53")
    if ":" in key:
        key, port = key.rsplit(":", 1)
    zone = key.lower() or "."
    if zone != "." and not zone.endswith("."):
        zone += "."
    return zone, port


def _lex(text: str, src: str = "") -> list[_Token]:
    # The Caddyfile rules coredns/caddy caddyfile/lexer.go implements: words split on
    # whitespace, "..." quotes (only \" is an escape), '#' outside quotes ends the line.
    tokens: list[_Token] = []
    line = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == '"':
            start, begin = line, i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    where = f"{src or 'Corefile'} line {start}"
                    raise ConfigError(f"{where}: quoted string is never closed; add the closing '\"'")
                ch = text[i]
                if ch == "\\" and i + 1 < n and text[i + 1] == '"':
                    chars.append('"')
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                chars.append(ch)
                i += 1
            tokens.append(_Token("".join(chars), start, line, src, start=begin, end=i))
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != "#":
                j += 1
            tokens.append(_Token(text[i:j], line, line, src, start=i, end=j))
            i = j
    return tokens


class _Parser:
    def __init__(self, text: str, imports: Mapping[str, str], *, literal: bool = False) -> None:
        self.tokens = _lex(text)
        self.pos = 0
        self.imports = imports
        #: read what the text says, without expanding snippets, and record each directive's Span
        self.literal = literal
        self.snippets: dict[str, list[_Token]] = {}
        self.expansions = 0

    # -- token stream ---------------------------------------------------------------
    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def new_line(self, at: int) -> bool:
        """Whether the token at ``at`` starts a line (coredns/caddy Dispenser.isNewLine)."""
        if at == 0:
            return True
        tok, prev = self.tokens[at], self.tokens[at - 1]
        return tok.starts_line or prev.src != tok.src or prev.end_line < tok.line

    def splice(self, tokens: list[_Token], at: _Token) -> None:
        self.expansions += 1
        if self.expansions > _MAX_EXPANSIONS:
            raise ConfigError(f"{_at(at)}: imports expand without end (a snippet imports itself?); break the cycle")
        if tokens:
            tokens = [replace(tokens[0], starts_line=True), *tokens[1:]]
        self.tokens[self.pos:self.pos] = tokens

    def do_import(self, tok: _Token) -> Directive | None:
        """Splice in a snippet or a given file; an unknown file is kept as an ``import`` directive."""
        if self.peek() is None or self.new_line(self.pos):
            raise ConfigError(f"{_at(tok)}: `import` needs a snippet name or file pattern")
        word = self.take()
        pattern = word.text
        if self.literal:
            return Directive("import", [pattern], [], tok.line,
                             Span(tok.start, word.end, tok.end, ((word.start, word.end),), None))
        if pattern in self.snippets:
            self.splice(self.snippets[pattern], tok)
            return None
        # A relative pattern is relative to the Corefile's folder, which we do not know: let it
        # match any folder. (fnmatch's '*' also crosses '/', unlike Go's filepath.Glob.)
        patterns = [pattern] if pattern.startswith("/") else [pattern, "*/" + pattern]
        matches = sorted(name for name in self.imports if any(fnmatch.fnmatchcase(name, p) for p in patterns))
        if matches:
            spliced: list[_Token] = []
            for name in matches:
                spliced.extend(_lex(self.imports[name], src=name))
            self.splice(spliced, tok)
            return None
        return Directive("import", [pattern], [], tok.line)

    # -- grammar ----------------------------------------------------------------------
    def body(self, opened: _Token | None) -> list[Directive]:
        """Directives up to the matching '}' (or end of text when ``opened`` is None)."""
        out: list[Directive] = []
        while True:
            tok = self.peek()
            if tok is None:
                if opened is not None:
                    raise ConfigError(f"{_at(opened)}: '{{' is never closed; add the matching '}}'")
                return out
            at = self.pos
            self.take()
            if tok.text == "}":
                if opened is None:
                    raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
                return out
            if tok.text == "{":
                raise ConfigError(
                    f"{_at(tok)}: '{{' must be on the line of the plugin or key it opens"
                )
            if tok.text == "import" and self.new_line(at):
                kept = self.do_import(tok)
                if kept is not None:
                    out.append(kept)
                continue
            out.append(self.directive(tok))

    def directive(self, first: _Token) -> Directive:
        args: list[str] = []
        block: list[Directive] = []
        arg_spans: list[tuple[int, int]] = []
        braces: tuple[int, int] | None = None
        end = first.end
        while True:
            tok = self.peek()
            # A '}' on the same line closes the enclosing block (CoreDNS wants a newline
            # there, but reading it is harmless and keeps one-line blocks parseable).
            if tok is None or self.new_line(self.pos) or tok.text == "}":
                span = Span(first.start, end, first.end, tuple(arg_spans), braces) if self.literal else None
                return Directive(first.text, args, block, first.line, span)
            self.take()
            if tok.text == "{":
                block.extend(self.body(tok))
                end = self.tokens[self.pos - 1].end  # the '}' body() stopped at
                braces = braces or (tok.start, end)
            else:
                args.append(tok.text)
                arg_spans.append((tok.start, tok.end))
                end = tok.end

    def keys(self) -> tuple[list[str], _Token]:
        first = self.take()
        found: list[str] = []
        tok: _Token | None = first
        more = False
        while tok is not None and tok.text != "{":
            if tok.text == "}":
                raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
            text = tok.text
            more = text.endswith(",")
            text = text.rstrip(",")
            if text:
                found.append(text)
            if self.peek() is None or (not more and self.new_line(self.pos)):
                break
            tok = self.take()
            if tok.text == "{":
                self.pos -= 1
                break
        if more:
            raise ConfigError(f"{_at(first)}: a server block key ends with ',' but no key follows")
        return found, first

    def parse(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while (tok := self.peek()) is not None:
            if tok.text == "import" and self.new_line(self.pos):
                self.take()
                # A file import at top level brings whole server blocks; one that matches
                # none of the given files is skipped, as CoreDNS skips an empty glob.
                self.do_import(tok)
                continue
            if tok.text == "}":
                raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
            if tok.text == "{":
                raise ConfigError(f"{_at(tok)}: '{{' opens a server block with no key; add one (.:53)")
            keys, first = self.keys()
            opener = self.peek()
            if len(keys) == 1 and keys[0].startswith("(") and keys[0].endswith(")"):
                self.snippet(keys[0][1:-1], first)
                continue
            if opener is not None and opener.text == "{":
                self.take()
                directives = self.body(opener)
            else:
                directives = self.body(None)
            blocks.append(ServerBlock(keys, directives, first.line))
        return blocks

    def snippet(self, name: str, first: _Token) -> None:
        opener = self.peek()
        if opener is None or opener.text != "{":
            raise ConfigError(f"{_at(first)}: snippet ({name}) needs a '{{' block")
        if name in self.snippets:
            raise ConfigError(f"{_at(first)}: snippet ({name}) is declared twice; rename one")
        self.take()
        nesting = 1
        tokens: list[_Token] = []
        while (tok := self.peek()) is not None:
            self.take()
            if tok.text == "{":
                nesting += 1
            elif tok.text == "}":
                nesting -= 1
                if nesting == 0:
                    self.snippets[name] = tokens
                    return
            tokens.append(tok)
        raise ConfigError(f"{_at(opener)}: '{{' of snippet ({name}) is never closed; add '}}'")


def parse(text: str, imports: Mapping[str, str] | None = None) -> list[ServerBlock]:
    """Parse a Corefile into server blocks; raise ConfigError (with the line) if malformed.

    Snippets are expanded. ``imports`` maps file names to their text (say the keys of AKS's
    ``coredns-custom`` ConfigMap mounted under /etc/coredns/custom): an ``import`` whose pattern
    matches some of them is expanded; one inside a block that matches none is kept as an
    ``import`` directive. Placeholders (``{$VAR}``, ``__PILLAR__X__``) are kept verbatim.
    """
    return _Parser(text, imports or {}).parse()


def parse_literal(text: str) -> list[ServerBlock]:
    """The server blocks as the text writes them, for editing it: snippets and imports are not
    expanded (an ``import`` stays a directive) and each directive carries its Span."""
    return _Parser(text, {}, literal=True).parse()
