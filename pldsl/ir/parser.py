"""Read the textual IR (the `pl` DSL as `print_ir` writes it) back into IR nodes.

`parse_ir(text)` parses with the LALR grammar in grammar.lark, then resolves names
and types every value the way the frontend does, so that
`structural_equal(parse_ir(print_ir(p)), p)` holds for every program `p`.

Conventions shared with the frontend (it must build the same trees):

* `bind_op_call` (pldsl/ir/opbinding.py, used by both) binds an op's arguments: runtime operands go to `OpCall.args` in
  parameter order (None for omitted optional ones); static attributes go to
  `OpCall.attrs` in parameter order, required ones always, optional ones only when
  given with a value other than None and other than the default (the printer omits
  defaults, so a stored default could not survive a round trip).
* `scalar_binop_type` types scalar operators.
* Integer literals are `Const(INDEX)`, float literals `Const(FP32)`, booleans
  `Const(BOOL)`, and `-<literal>` folds into a negative constant; inside tensor
  types, integer dims are plain `int`s.
* `Function.dynamic_dims` lists the dynamic dims named in the parameters' tensor
  shapes, in first-seen order (parameters left to right, dims left to right); dims
  named only in a valid_shape are not included.
* Each use of a name is a fresh `Var` (same name and type) located at the use.
* The annotation of `name: T = value` must be the type the value infers
  (`symbolic.types_equal`, the frontend's rebinding rule); the Var gets `T`.
"""

from __future__ import annotations

import ast
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from lark.indenter import DedentError, Indenter

from pldsl.diagnostics import Diagnostic, IRParseError, PldslError, Span, register_source
from pldsl.dtypes import ALL_DTYPES, BOOL, FP32, INDEX, TASK_ID, DType
from pldsl.enums import ENUMS, FunctionType, Level, MemorySpace, Optimizer, PadValue, Role
from pldsl.ir.analysis import if_result, own_yields
from pldsl.ir.nodes import (
    SCALAR_BINOPS,
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    MakeTuple,
    OpCall,
    Param,
    Program,
    Return,
    Scope,
    Signature,
    Stmt,
    TupleGet,
    UnaryOp,
    Var,
    While,
    Yield,
)
from pldsl.ir.opbinding import bind_op_call, scalar_binop_type
from pldsl.ir.opdefs import TypeRuleError, lookup
from pldsl.ir.printer import NAME_LIST_ATTRS, describe_type
from pldsl.ir.symbolic import deduce_call_type, shape_vars, types_equal
from pldsl.ir.types import (
    DistributedTensorType,
    ScalarType,
    TensorType,
    TileType,
    TupleType,
    Type,
    WindowBufferType,
)

__all__ = ["parse_ir"]

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

# --------------------------------------------------------------------- lexing


class _IndentError(Exception):
    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class _IRIndenter(Indenter):
    """Python-style INDENT/DEDENT tokens; newlines inside brackets are ignored."""

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token) -> Iterator[Token]:
        try:
            yield from super().handle_NL(token)
        except DedentError:
            indent_str = token.rsplit("\n", 1)[-1]
            line = (token.line or 1) + token.count("\n")
            raise _IndentError(
                line,
                len(indent_str) + 1,
                "unindent does not match any outer indentation level",
            ) from None

    def _process(self, stream):
        # Indenter._process, minus its assertion on an unbalanced ')' (left to the parser).
        token = None
        for token in stream:
            if token.type == self.NL_type:
                yield from self.handle_NL(token)
            else:
                yield token
            if token.type in self.OPEN_PAREN_types:
                self.paren_level += 1
            elif token.type in self.CLOSE_PAREN_types:
                self.paren_level = max(0, self.paren_level - 1)
        while len(self.indent_level) > 1:
            self.indent_level.pop()
            yield (
                Token.new_borrow_pos(self.DEDENT_type, "", token)
                if token
                else Token(self.DEDENT_type, "", 0, 0, 0, 0, 0, 0)
            )


_GRAMMAR: str | None = None
_LOCAL = threading.local()  # one parser per thread: the indenter keeps state while parsing


def _lark() -> Lark:
    global _GRAMMAR
    parser = getattr(_LOCAL, "lark", None)
    if parser is None:
        if _GRAMMAR is None:
            _GRAMMAR = GRAMMAR_PATH.read_text()
        parser = _LOCAL.lark = Lark(
            _GRAMMAR,
            parser="lalr",
            postlex=_IRIndenter(),
            propagate_positions=True,
            maybe_placeholders=False,
        )
    return parser


_TOKEN_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a float",
    "STRING": "a string",
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "end of input",
}


def _token_name(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return repr(pattern.value)
    return name


def _found(token: Token) -> str:
    if token.type in ("_INDENT", "_DEDENT", "_NL", "$END"):
        return {
            "_INDENT": "indent",
            "_DEDENT": "unindent",
            "_NL": "end of line",
            "$END": "end of input",
        }[token.type]
    return repr(str(token))


# ------------------------------------------------------------------- parsing


def parse_ir(text: str, filename: str = "<ir>") -> Program:
    """Parse IR text (as written by `print_ir`) into a typed Program.

    Raises IRParseError, with the line and column, on any malformed input."""
    register_source(filename, text)
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _lark().parse(source)
    except _IndentError as e:
        raise _error(Span(filename, e.line, e.col), e.message) from None
    except UnexpectedInput as e:
        raise _syntax_error(e, filename, text) from None
    except PldslError:
        raise
    except Exception as e:  # lark's own errors that carry no position
        raise _error(Span(filename, 1, 1), f"cannot parse IR text: {e}") from None
    return _Reader(filename).program(tree)


def _error(span: Span, message: str, help: str | None = None) -> IRParseError:
    return IRParseError(Diagnostic("IRParse", "error", message, span, help))


def _syntax_error(e: UnexpectedInput, filename: str, text: str) -> IRParseError:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type in ("_INDENT", "_DEDENT"):
            line, col = tok.end_line or tok.line, tok.end_column or tok.column
        else:
            line, col = tok.line, tok.column
        if tok.type == "$END" or not line:
            line, col = _end_of(text)
        expected = sorted({_token_name(n) for n in e.expected})
        message = f"unexpected {_found(tok)}"
        help_ = f"expected {_one_of(expected)}" if expected else None
        return _error(Span(filename, line or 1, col or 1), message, help_)
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        return _error(Span(filename, e.line, e.column), f"unexpected character {ch!r}")
    if isinstance(e, UnexpectedEOF):
        line, col = _end_of(text)
        expected = sorted({_token_name(n) for n in e.expected})
        return _error(
            Span(filename, line, col),
            "unexpected end of input",
            f"expected {_one_of(expected)}" if expected else None,
        )
    return _error(Span(filename, getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1), str(e))


def _one_of(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) > 12:
        names = names[:12] + ["..."]
    return "one of " + ", ".join(names)


def _end_of(text: str) -> tuple[int, int]:
    lines = text.rstrip("\n").split("\n")
    return len(lines), len(lines[-1]) + 1


# Grammar rule -> BinOp.op: the same names, except `and_`/`or_` (Python keywords in lark).
_BINOPS = {(f"{op}_" if op in ("and", "or") else op): op for op in SCALAR_BINOPS}

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class _Reader:
    """Resolves names and types over the lark tree (one instance per parse)."""

    def __init__(self, filename: str):
        self.filename = filename
        self.dynamic: dict[str, Var] = {}
        self.signatures: dict[str, Signature] = {}
        self.scope: dict[str, Var] = {}
        self.where = Span(filename, 1, 1)

    # ------------------------------------------------------------- helpers

    def span(self, node: Any) -> Span:
        if isinstance(node, Token):
            if node.line is None:
                return self.where
            return Span(
                self.filename,
                node.line,
                node.column,
                node.end_line or node.line,
                node.end_column or node.column,
            )
        meta = node.meta
        if getattr(meta, "empty", True):
            return self.where
        return Span(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def fail(self, node: Any, message: str, help: str | None = None) -> NoReturn:
        raise _error(self.span(node) if node is not None else self.where, message, help)

    # ------------------------------------------------------------- program

    def program(self, tree: Tree) -> Program:
        try:
            return self._program(tree)
        except PldslError:
            raise
        except TypeRuleError as e:
            raise _error(self.where, e.message, e.hint) from None
        except Exception as e:  # never leak a raw exception on user input
            raise _error(self.where, f"cannot read this IR: {type(e).__name__}: {e}") from None

    def _program(self, tree: Tree) -> Program:
        prog = None
        for child in tree.children:
            if isinstance(child, Tree) and child.data == "dynamic_decl":
                self.dynamic_decl(child)
            elif isinstance(child, Tree) and child.data == "program":
                prog = child
        assert prog is not None
        name_tok, *funcs = prog.children
        self.where = self.span(name_tok)
        for f in funcs:
            name = str(f.children[1])
            if name in self.signatures:
                self.fail(f.children[1], f"function '{name}' is defined twice")
            self.signatures[name] = self.signature(f)
        functions = tuple(self.function(f) for f in funcs)
        return Program(str(name_tok), functions, self.span(name_tok), self.filename)

    def dynamic_decl(self, tree: Tree) -> None:
        name, string = tree.children
        self.where = self.span(tree)
        label = ast.literal_eval(str(string))
        if label != str(name):
            self.fail(
                string,
                f"dynamic dim '{name}' is declared as pl.dynamic({label!r})",
                f'write {name} = pl.dynamic("{name}")',
            )
        if str(name) in self.dynamic:
            self.fail(name, f"dynamic dim '{name}' is declared twice")
        self.dynamic[str(name)] = Var(str(name), ScalarType(INDEX), self.span(name))

    # ----------------------------------------------------------- functions

    def signature(self, tree: Tree) -> Signature:
        self.scope = {}
        params: list[Param] = []
        returns: tuple[Type, ...] = ()
        is_tuple = False
        for child in tree.children[2:]:
            if not isinstance(child, Tree):
                continue
            if child.data == "in_param":
                params.append(self.param(child.children[0], child.children[1], "In"))
            elif child.data == "directed_param":
                name, direction, t = child.children
                params.append(self.param(name, t, str(direction.children[0])))
            elif child.data == "return_annotation":
                rt = self.type(child.children[0])
                if isinstance(rt, TupleType):
                    returns, is_tuple = rt.items, True
                else:
                    returns = (rt,)
        return Signature(tuple(params), returns, is_tuple)

    def param(self, name: Token, type_tree: Tree, direction: str) -> Param:
        if str(name) in self.scope:
            self.fail(name, f"parameter '{name}' is declared twice")
        var = Var(str(name), self.type(type_tree), self.span(name))
        self.scope[var.name] = var
        return Param(var, direction)

    def function(self, tree: Tree) -> Function:
        decorator, name = tree.children[0], tree.children[1]
        body_tree = tree.children[-1]
        self.where = self.span(name)
        attrs = self.keywords(decorator.children)
        func_type, level, role, external = FunctionType.Opaque, None, None, False
        for key, (value, node) in attrs.items():
            if key == "type":
                func_type = self.expect_attr(value, FunctionType, node, "pl.FunctionType.InCore")
            elif key == "level":
                level = self.expect_attr(value, Level, node, "pl.Level.CORE_GROUP")
            elif key == "role":
                role = self.expect_attr(value, Role, node, "pl.Role.SubWorker")
            elif key == "external":  # a `pl.jit.extern` declaration (its body is C++)
                external = self.expect_attr(value, bool, node, "True")
            else:
                self.fail(
                    node,
                    f"unknown @pl.function argument '{key}'",
                    "use type=, level=, role=, external=",
                )
        sig = self.signatures[str(name)]
        self.scope = {p.name: p.var for p in sig.params}
        is_stub = body_tree.data == "host_stub" and not external
        body = () if body_tree.data == "host_stub" else self.suite(body_tree)
        return Function(
            str(name),
            sig.params,
            sig.returns,
            body,
            func_type,
            level,
            role,
            is_stub,
            sig.tuple_return,
            self.dynamic_dims_of(sig.params),
            self.span(name),
            external,
        )

    def expect_attr(self, value: Any, kind: type, node: Any, example: str) -> Any:
        if not isinstance(value, kind):
            self.fail(node, f"expected a {kind.__name__}, e.g. {example}")
        return value

    def dynamic_dims_of(self, params: tuple[Param, ...]) -> tuple[Var, ...]:
        """The declared dynamic dims named in the parameters' shapes, in first-seen order
        (valid_shape dims are not bound from arguments)."""
        seen: dict[str, Var] = {}
        for p in params:
            for v in shape_vars(p.type):
                if v.name in self.dynamic:
                    seen.setdefault(v.name, v)
        return tuple(seen.values())

    # --------------------------------------------------------------- types

    def type(self, tree: Tree) -> Type:
        kind = tree.data
        if kind == "tile_type":
            dims, dtype, memory, *view = tree.children
            t = self.type(Tree("tensor_type", [dims, dtype, *view]))
            space = self.expect_attr(self.attr(memory), MemorySpace, memory, "pl.MemorySpace.Vec")
            if space is MemorySpace.DDR:
                self.fail(memory, "a pl.Tile lives on chip: DDR is where a pl.Tensor lives")
            return TileType(t.shape, t.dtype, t.valid_shape, t.pad, space)
        if kind == "tensor_type":
            dims, dtype, *view = tree.children
            valid, pad = None, None
            if view:
                seen = set()
                for field in view[0].children:
                    if field.data in seen:
                        self.fail(field, f"'{field.data}' is given twice")
                    seen.add(field.data)
                    if field.data == "valid_shape":
                        valid = self.dims(field.children[0])
                    else:
                        pad = self.attr(field.children[0])
                        if pad is not None:
                            pad = self.expect_attr(pad, PadValue, field, "pl.PadValue.zero")
            return TensorType(self.dims(dims), self.dtype(dtype), valid, pad)
        if kind == "pld_type":
            which, dims, dtype = tree.children
            cls = DistributedTensorType if str(which) == "DistributedTensor" else WindowBufferType
            return cls(self.dims(dims), self.dtype(dtype))
        if kind == "scalar_type":
            return ScalarType(self.dtype(tree.children[0]))
        if kind == "tuple_type":
            return TupleType(tuple(self.type(c) for c in tree.children))
        self.fail(tree, "expected a type")

    def dims(self, tree: Tree) -> tuple[Any, ...]:
        out = []
        for child in tree.children:
            e = self.expr(child)
            if isinstance(e, Const) and e.dtype == INDEX and type(e.value) is int:
                out.append(e.value)
            elif isinstance(e.type, ScalarType) and e.type.dtype.is_int:
                out.append(e)
            else:
                self.fail(child, f"a dim must be an integer scalar, got {describe_type(e.type)}")
        return tuple(out)

    def dtype(self, tree: Tree) -> DType:
        name = str(tree.children[0])
        if name not in ALL_DTYPES:
            self.fail(
                tree,
                f"unknown dtype 'pl.{name}'",
                "dtypes: " + ", ".join(f"pl.{d}" for d in ALL_DTYPES),
            )
        return ALL_DTYPES[name]

    # ---------------------------------------------------------- statements

    def suite(self, tree: Tree) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for child in tree.children:
            stmt = self.stmt(child)
            if stmt is not None:
                out.append(stmt)
        return tuple(out)

    def stmt(self, tree: Tree) -> Stmt | None:
        self.where = span = self.span(tree)
        kind = tree.data
        ch = tree.children
        if kind == "typed_assign":
            name, type_tree, value_tree = ch
            value = self.expr(value_tree)
            declared = self.type(type_tree)
            if not types_equal(declared, value.type):
                self.fail(
                    type_tree,
                    f"annotation {describe_type(declared)} does not match the value's type "
                    f"{describe_type(value.type)}",
                    "the annotation must be the type the value's op rule infers",
                )
            return Assign((self.define(name, declared),), value, span)
        if kind == "assign":
            names, value_tree = ch
            value = self.expr(value_tree)
            targets = self.bind_targets(names, value, value_tree)
            return Assign(targets, value, span)
        if kind == "yield_stmt":
            names = ch[0] if ch and isinstance(ch[0], Tree) and ch[0].data == "targets" else None
            values = tuple(self.expr(c) for c in (ch[1:] if names is not None else ch))
            targets: tuple[Var, ...] = ()
            if names is not None:
                if len(names.children) != len(values):
                    self.fail(
                        names,
                        f"{len(names.children)} targets for {len(values)} yielded values",
                    )
                targets = tuple(
                    self.define(n, self.value_type(v, n)) for n, v in zip(names.children, values)
                )
            return Yield(targets, values, span)
        if kind == "expr_stmt":
            return ExprStmt(self.expr(ch[0]), span)
        if kind == "return_stmt":
            return Return(tuple(self.expr(c) for c in ch), span)
        if kind == "break_stmt":
            return Break(span)
        if kind == "continue_stmt":
            return Continue(span)
        if kind == "pass_stmt":
            return None
        if kind == "for_stmt":
            return self.for_stmt(tree, span)
        if kind == "while_stmt":
            return self.while_stmt(ch, span)
        if kind == "while_ssa_stmt":
            return self.while_ssa_stmt(ch, span)
        if kind == "if_stmt":
            cond = self.expr(ch[0])
            then_body = self.suite(ch[1])
            else_body = self.suite(ch[2]) if len(ch) > 2 else ()
            self.check_if_results(tree, then_body, else_body)
            return If(cond, then_body, else_body, span)
        if kind == "with_stmt":
            return self.with_stmt(ch, span)
        self.fail(tree, f"unsupported statement ({kind})")

    def with_stmt(self, ch: list[Any], span: Span) -> Scope:
        kind_tok, *rest = ch
        body_tree = rest.pop()
        tid_tok = None
        if rest and isinstance(rest[-1], Tree) and rest[-1].data == "with_as":
            tid_tok = rest.pop().children[0]
        deps: tuple[Expr, ...] = ()
        kws = [kw for kw in rest if kw is not None]
        for kw in kws:
            if str(kw.children[0]) == "deps":
                value = kw.children[1]
                if not (isinstance(value, Tree) and value.data == "list_expr"):
                    self.fail(kw, "deps= takes a list of task ids")
                deps = tuple(self.expr(c) for c in value.children)
        names = [kw for kw in kws if str(kw.children[0]) in NAME_LIST_ATTRS]
        others = [kw for kw in kws if str(kw.children[0]) != "deps" and kw not in names]
        attrs = tuple((k, v) for k, (v, _) in self.keywords(others).items())
        attrs += tuple((str(kw.children[0]), self.name_list(kw)) for kw in names)
        body = self.suite(body_tree)
        tid = self.define(tid_tok, ScalarType(TASK_ID)) if tid_tok is not None else None
        return Scope(str(kind_tok), attrs, body, span, tid, deps)

    def name_list(self, kw: Tree) -> tuple[str, ...]:
        """`no_dep_args=[t1, t2]`: names of tensors in scope, kept as names."""
        value = kw.children[1]
        items = value.children if isinstance(value, Tree) and value.data == "list_expr" else None
        if items is None:
            self.fail(kw, f"{kw.children[0]}= takes a list of tensor names")
        exprs = [self.expr(c) for c in items]
        if not all(isinstance(e, Var) and isinstance(e.type, TensorType) for e in exprs):
            self.fail(kw, f"{kw.children[0]}= takes a list of tensor names")
        return tuple(e.name for e in exprs)

    def define(self, name: Token, t: Type) -> Var:
        var = Var(str(name), t, self.span(name))
        self.scope[var.name] = var
        return var

    def value_type(self, value: Expr, node: Any) -> Type:
        t = getattr(value, "type", None)
        if t is None:
            self.fail(node, "this value has no type to give a variable")
        return t

    def bind_targets(self, names: Tree, value: Expr, value_tree: Any) -> tuple[Var, ...]:
        toks = names.children
        t = self.value_type(value, value_tree)
        if len(toks) == 1:
            return (self.define(toks[0], t),)
        if not isinstance(t, TupleType):
            self.fail(names, f"{len(toks)} targets need a pl.Tuple value, got {describe_type(t)}")
        if len(t.items) != len(toks):
            self.fail(names, f"{len(toks)} targets for a value of {len(t.items)} items")
        return tuple(self.define(n, it) for n, it in zip(toks, t.items))

    def for_stmt(self, tree: Tree, span: Span) -> For:
        ch = list(tree.children)
        var_tok = ch.pop(0)
        iter_names: list[Token] = []
        if isinstance(ch[0], Tree) and ch[0].data == "iter_targets":
            iter_names = list(ch.pop(0).children)
        kind = str(ch[0].children[0])
        loop_args, body_tree = ch[1], ch[2]
        start, stop, step = (self.expr(c) for c in loop_args.children[:3])
        attrs: list[tuple[str, Any]] = []
        inits: tuple[Expr, ...] | None = None
        seen: set[str] = set()
        for kw in loop_args.children[3:]:
            key = "init_values" if kw.data == "init_values" else str(kw.children[0])
            if key in seen:
                self.fail(kw, f"keyword '{key}' is given twice")
            seen.add(key)
            if kw.data == "init_values":
                inits = tuple(self.expr(c) for c in kw.children)
            else:
                attrs.append((key, self.attr(kw.children[1])))
        if iter_names and inits is None:
            self.fail(tree, "loop carries need init_values=(...)")
        if inits is not None and len(inits) != len(iter_names):
            self.fail(
                tree,
                f"{len(iter_names)} loop-carried variables for {len(inits)} init_values",
            )
        iter_args = tuple(
            self.define(n, self.value_type(v, n)) for n, v in zip(iter_names, inits or ())
        )
        var = self.define(var_tok, ScalarType(INDEX))
        body = self.suite(body_tree)
        self.check_carried(tree, iter_args, body)
        return For(var, kind, start, stop, step, body, iter_args, inits or (), tuple(attrs), span)

    def check_if_results(self, tree: Any, then_body: tuple, else_body: tuple) -> None:
        """An SSA if: both branches end with a yield of the same names and types (the
        executors bind the if's results from whichever branch ran)."""
        phis = [if_result(then_body), if_result(else_body)]
        if not any(phis):
            return
        a, b = phis
        same = (
            a is not None
            and b is not None
            and a.targets
            and [t.name for t in a.targets] == [t.name for t in b.targets]
            and all(types_equal(x.type, y.type) for x, y in zip(a.targets, b.targets))
        )
        if not same:
            self.fail(
                tree,
                "both branches of an if must end with `r = pl.yield_(...)` of the same names "
                "and types",
            )

    def check_carried(self, tree: Any, iter_args: tuple[Var, ...], body: tuple) -> None:
        """A loop's yields give one value of each carry's type."""
        for y in own_yields(body) if iter_args else ():
            if len(y.values) != len(iter_args) or not all(
                types_equal(v.type, c.type) for v, c in zip(y.values, iter_args)
            ):
                self.fail(
                    tree,
                    "the loop's pl.yield_ must give one value of each carry's type ("
                    + ", ".join(describe_type(c.type) for c in iter_args)
                    + ")",
                )

    def while_stmt(self, ch: list[Any], span: Span) -> While:
        cond = self.bool_cond(ch[0], "while")
        return While(cond, self.suite(ch[1]), (), (), span)

    def while_ssa_stmt(self, ch: list[Any], span: Span) -> While:
        iters, inits_tree, cond_tree, *stmts = ch
        inits = tuple(self.expr(c) for c in inits_tree.children)
        if len(iters.children) != len(inits):
            self.fail(
                iters, f"Mismatch: {len(iters.children)} iter_args but {len(inits)} init_values"
            )
        outer = {str(n): self.scope.get(str(n)) for n in iters.children}
        iter_args = tuple(
            self.define(n, self.value_type(v, n)) for n, v in zip(iters.children, inits)
        )
        cond = self.bool_cond(cond_tree.children[0], "while")
        body = tuple(b for b in (self.stmt(c) for c in stmts) if b is not None)
        self.check_carried(iters, iter_args, body)
        for name, var in outer.items():  # header names are loop-scoped (PyPTO)
            if var is None:
                self.scope.pop(name, None)
            else:
                self.scope[name] = var
        for y in body[-1:]:
            if isinstance(y, Yield):
                for t in y.targets:
                    self.scope[t.name] = t
        return While(cond, body, iter_args, inits, span)

    def bool_cond(self, tree: Any, what: str) -> Expr:
        cond = self.expr(tree)
        if not (isinstance(cond.type, ScalarType) and cond.type.dtype == BOOL):
            self.fail(tree, f"{what} condition must be a Bool-typed scalar expression")
        return cond

    def keywords(self, children: list[Any]) -> dict[str, tuple[Any, Any]]:
        out: dict[str, tuple[Any, Any]] = {}
        for kw in children:
            key, value = kw.children
            if str(key) in out:
                self.fail(key, f"keyword '{key}' is given twice")
            out[str(key)] = (self.attr(value), value)
        return out

    # --------------------------------------------------------- expressions

    def expr(self, node: Any) -> Expr:
        if isinstance(node, Token):
            return self.token_expr(node)
        kind = node.data
        ch = node.children
        span = self.span(node)
        if kind == "name":
            tok = ch[0]
            var = self.scope.get(str(tok)) or self.dynamic.get(str(tok))
            if var is None:
                self.fail(
                    tok, f"unknown name '{tok}'", "every variable must be assigned before use"
                )
            return Var(var.name, var.type, span)  # a use: a fresh Var, located at the use
        if kind in _BINOPS:
            lhs, rhs = self.expr(ch[0]), self.expr(ch[1])
            op = _BINOPS[kind]
            try:
                t = scalar_binop_type(op, lhs.type, rhs.type)
            except TypeRuleError as e:
                self.fail(node, e.message, e.hint)
            return BinOp(op, lhs, rhs, t, span)
        if kind == "neg":
            if isinstance(ch[0], Token) and ch[0].type in ("INT", "FLOAT"):
                lit = self.token_expr(ch[0])
                return Const(-lit.value, lit.dtype, span)
            operand = self.expr(ch[0])
            if not isinstance(operand.type, ScalarType):
                self.fail(
                    node, f"'-' needs a scalar, got {describe_type(operand.type)}", "use pl.neg"
                )
            return UnaryOp("neg", operand, operand.type, span)
        if kind == "not_":
            operand = self.expr(ch[0])
            if not isinstance(operand.type, ScalarType):
                self.fail(node, f"'not' needs a scalar, got {describe_type(operand.type)}")
            return UnaryOp("not", operand, ScalarType(BOOL), span)
        if kind == "paren":
            return self.expr(ch[0])
        if kind in ("true", "false"):
            return Const(kind == "true", BOOL, span)
        if kind == "list_expr":
            return ListExpr(tuple(self.expr(c) for c in ch), span)
        if kind == "const":
            dtype = self.dtype(ch[1])
            return Const(self.const_number(ch[0], dtype), dtype, span)
        if kind == "op_call":
            return self.op_call(node, span)
        if kind == "user_call":
            return self.user_call(node, span)
        if kind == "tuple_expr":
            items = tuple(self.expr(c) for c in ch if c is not None)
            return MakeTuple(
                items, TupleType(tuple(self.value_type(i, c) for i, c in zip(items, ch))), span
            )
        if kind == "tuple_get":
            value = self.expr(ch[0])
            index = int(ch[1])
            t = value.type
            if not isinstance(t, TupleType):
                self.fail(node, f"only tuple values take [index], got {describe_type(t)}")
            if index >= len(t.items):
                self.fail(ch[1], f"index {index} out of range for a tuple of {len(t.items)}")
            return TupleGet(value, index, t.items[index], span)
        if kind == "pl_name":
            self.fail(node, f"'{self.pl_text(node)}' is not a value here")
        if kind == "none":
            self.fail(node, "None is not a value here")
        self.fail(node, f"unexpected expression ({kind})")

    def token_expr(self, tok: Token) -> Const:
        span = self.span(tok)
        if tok.type == "INT":
            return Const(int(tok), INDEX, span)
        if tok.type == "FLOAT":
            return Const(float(tok), FP32, span)
        if tok.type == "STRING":
            self.fail(tok, "a string is not a value here")
        self.fail(tok, f"unexpected {tok!s}")

    def const_value(self, node: Any) -> int | float | bool:
        value = self.attr(node)
        if isinstance(value, str):
            if value not in _NON_FINITE:
                self.fail(
                    node,
                    f"pl.const needs a number, got {value!r}",
                    "'inf', '-inf' and 'nan' are accepted",
                )
            return _NON_FINITE[value]
        if not isinstance(value, (int, float, bool)):
            self.fail(node, "pl.const needs a number")
        return value

    def const_number(self, node: Any, dtype: DType) -> int | float | bool:
        """The value of `pl.const(v, dtype)`, normalised to the dtype as capture does."""
        value = self.const_value(node)
        if dtype.is_float:
            return float(value)
        if dtype.is_bool:
            return bool(value)
        if isinstance(value, float) and not value.is_integer():
            self.fail(node, f"pl.const value {value!r} is not a {dtype.name}")
        return int(value)

    def pl_text(self, node: Tree) -> str:
        return "pl." + ".".join(str(t) for t in node.children)

    def op_call(self, node: Tree, span: Span) -> OpCall:
        name_tree = node.children[0]
        name = ".".join(str(t) for t in name_tree.children)
        opdef = lookup(name)
        if opdef is None:
            self.fail(name_tree, f"unknown op 'pl.{name}'", "see pldsl.ops.OPS for the builtin ops")
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        arg_nodes = node.children[1].children if len(node.children) > 1 else []
        for arg in arg_nodes:
            if isinstance(arg, Tree) and arg.data == "keyword":
                key, value = str(arg.children[0]), arg.children[1]
                if key in keywords:
                    self.fail(arg, f"keyword '{key}' is given twice")
                keywords[key] = self.op_arg(opdef.param(key), value)
            else:
                if keywords:
                    self.fail(arg, "a positional argument follows a keyword argument")
                p = opdef.params[len(positional)] if len(positional) < len(opdef.params) else None
                positional.append(self.op_arg(p, arg))
        try:
            return bind_op_call(opdef, positional, keywords, span)
        except TypeRuleError as e:
            prefix = "" if f"pl.{opdef.name}" in e.message else f"pl.{opdef.name}: "
            self.fail(node, prefix + e.message, e.hint)

    def op_arg(self, param: Any, node: Any) -> Any:
        if param is not None and param.is_static:
            return self.attr(node)
        if isinstance(node, Tree) and node.data == "none":
            return None
        return self.expr(node)

    def user_call(self, node: Tree, span: Span) -> Call:
        name, *arg_nodes = node.children
        sig = self.signatures.get(str(name))
        if sig is None:
            self.fail(name, f"unknown function 'self.{name}'")
        args = tuple(self.expr(a) for a in arg_nodes)
        if len(args) != len(sig.params):
            self.fail(node, f"self.{name} takes {len(sig.params)} arguments, got {len(args)}")
        call_type = deduce_call_type(sig.params, tuple(a.type for a in args), sig.call_type)
        return Call(str(name), args, call_type, span)

    # ---------------------------------------------------------- attributes

    def attr(self, node: Any) -> Any:
        """A static attribute value: dtype, enum member, number, string, bool, None, list."""
        if isinstance(node, Token):
            if node.type == "INT":
                return int(node)
            if node.type == "FLOAT":
                return float(node)
            if node.type == "STRING":
                return ast.literal_eval(str(node))
            self.fail(node, "expected a static value")
        kind = node.data
        ch = node.children
        if kind == "true":
            return True
        if kind == "false":
            return False
        if kind == "none":
            return None
        if kind == "paren":
            return self.attr(ch[0])
        if kind == "neg" and isinstance(ch[0], Token) and ch[0].type in ("INT", "FLOAT"):
            return -self.attr(ch[0])
        if kind == "list_expr":
            return tuple(self.attr(c) for c in ch)
        if kind == "const":
            return self.const_value(ch[0])
        if kind == "pl_name":
            return self.pl_attr(node)
        self.fail(
            node,
            "expected a static value (a pl.<DTYPE>, an enum member, a number, a string or a list)",
        )

    def pl_attr(self, node: Tree) -> Any:
        parts = [str(t) for t in node.children]
        if len(parts) == 1:
            if parts[0] in ALL_DTYPES:
                return ALL_DTYPES[parts[0]]
            if parts[0] in Optimizer.__members__:
                return Optimizer[parts[0]]
            self.fail(
                node,
                f"unknown name '{self.pl_text(node)}'",
                "dtypes are pl.FP32, pl.BF16, ...; optimizers pl.auto_chunk, pl.chunked_loop_optimizer",
            )
        if len(parts) == 2 and parts[0] in ENUMS:
            enum = ENUMS[parts[0]]
            if parts[1] not in enum.__members__:
                self.fail(
                    node,
                    f"unknown {parts[0]} member '{parts[1]}'",
                    f"members: {', '.join(enum.__members__)}",
                )
            return enum[parts[1]]
        self.fail(node, f"unknown name '{self.pl_text(node)}'")
