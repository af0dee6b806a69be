"""CPU savings in moto 5.2.5's DynamoDB request handling (same answers, less work per request).

hsm-demo sends the same handful of ConditionExpression / UpdateExpression strings for every
device, with different ExpressionAttributeValues; stock moto re-lexes and re-parses each of them
several times per request (an UpdateItem parses its UpdateExpression twice and its condition twice,
a TransactWriteItems parses every condition three times). With the stand-in at 100 % CPU at ~24
devices/s, that parsing and the AST validation were the largest costs. What is done here, and why
each is invisible to clients (moto's own code still decides every answer):

* `UpdateExpressionParser.make(expr)` is memoised by the expression string. Its result (an AST with
  placeholders such as `#token` / `:token`, never values or names) depends on the string alone.
  Every moto caller either only reads that AST (`find_clauses`) or hands it to a `Validator`,
  which deep-copies it before resolving names/values into the copy — so the cached AST is never
  mutated and each request still validates and executes its own copy with its own names/values.
  A string that does not parse raises every time (errors are never cached).
* The Validator's `deepcopy` of that AST uses `_copy_ast`, a copy with deepcopy's semantics
  (memo, parent links, shared immutable leaves) specialised to moto's AST nodes, whose state is
  exactly `type`, `children` and `parent`; anything else goes to `copy.deepcopy`.
* `DepthFirstTraverser` rebuilt its `_processing_map()` dict for every node it visited and tested
  each node with isinstance against ABCMeta classes; the same post-order walk now looks the
  handler up once per (processor, node type). `Node.find_clauses` likewise.
* The three purely structural UpdateExpression checks (clause counts, overlapping paths, key
  attributes) run once per (expression, names, table key attributes): see
  `_install_structural_check_cache`.
* `ConditionExpressionParser._lex_condition_expression` (the tokeniser, a pure function of the
  expression string) is memoised; each call gets a fresh deque of fresh leaf nodes.
* `ConditionExpressionParser.parse` is memoised per (expression, names, values) when every value
  is a scalar: see `_install_condition_parse_cache`.
* `ReservedKeywords.get_reserved_keywords()` is a list of ~570 words that moto scans linearly
  for every plain attribute name of every expression; it becomes the same list (same words, same
  order) with a hashed `in`.
* `LimitedSizeDict.__setitem__` (every attribute an Item gets) recomputes the size of the whole
  item through `DynamoType.size()`; for the two scalar types that make up nearly every item
  (`S` with a str value, `N`) the same size is computed inline, anything else calls `size()`.

Caches are bounded (cleared when they reach `_CACHE_MAX` entries): clients that build expression
strings with embedded values cannot grow the stand-in without bound. tests/test_fast_paths.py
pins them against staleness.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Any

_CACHE_MAX = 4096
_cache_lock = threading.Lock()
_update_asts: dict[str, Any] = {}
_ast_strings: dict[int, str] = {}  # id(cached AST) -> its expression string (see _ast_string)
_structural_ok: dict[tuple[Any, ...], bool] = {}
_condition_tokens: dict[str, tuple[tuple[str, str], ...]] = {}

_IMMUTABLE = frozenset((str, int, float, bool, type(None)))  # exact types deepcopy returns as is
_Node: Any = None  # moto.dynamodb.parsing.ast_nodes.Node, set by install()
_node_types: dict[type, bool] = {}


def _is_node(t: type) -> bool:
    """issubclass(t, Node), cached: isinstance against moto's ABCMeta classes is slow."""
    known = _node_types.get(t)
    if known is None:
        known = _node_types[t] = issubclass(t, _Node)
    return known


_NODE_STATE = frozenset(("type", "children", "parent"))


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    with _cache_lock:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value


_plain_types: dict[type, bool] = {}


def _copy_ast(node: Any, memo: dict[int, Any]) -> Any:
    """copy.deepcopy(node) for moto's DynamoDB AST nodes, without deepcopy's generic machinery."""
    found = memo.get(id(node))
    if found is not None:
        return found
    t = type(node)
    plain = _plain_types.get(t)
    if plain is None:
        plain = _plain_types[t] = getattr(t, "__deepcopy__", None) is None and issubclass(t, _Node)
    state = node.__dict__
    if not plain or state.keys() != _NODE_STATE:
        return copy.deepcopy(node, memo)  # not a plain moto AST node: the generic copy
    new = object.__new__(t)
    memo[id(node)] = new
    parent = state["parent"]
    # the parent is usually copied already (we descend from it): found in memo
    if parent is not None:
        copied_parent = memo.get(id(parent))
        parent = copied_parent if copied_parent is not None else _copy_ast(parent, memo)
    children = state["children"]
    if children is not None:
        copied = []
        for child in children:
            ct = type(child)
            if ct in _IMMUTABLE:
                copied.append(child)
            elif _plain_types.get(ct) or _is_node(ct):
                copied.append(_copy_ast(child, memo))
            else:
                copied.append(copy.deepcopy(child, memo))
        children = copied
    new.__dict__ = {"type": state["type"], "children": children, "parent": parent}
    return new


def _install_update_expression_cache() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser.make, "_standin", False):
        return
    global _Node
    _Node = Node
    original_make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    def make(cls: Any, expression_str: Any) -> Any:
        if cls is not UpdateExpressionParser or not isinstance(expression_str, str):
            return original_make(cls, expression_str)
        ast = _update_asts.get(expression_str)
        if ast is None:
            ast = original_make(cls, expression_str)  # raises for a bad expression: not cached
            with _cache_lock:
                if len(_update_asts) >= _CACHE_MAX:
                    _update_asts.clear()
                    _ast_strings.clear()
                    _structural_ok.clear()
                _update_asts[expression_str] = ast
                _ast_strings[id(ast)] = expression_str
        return ast

    make._standin = True  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]

    # The Validator (and one function evaluator) call `deepcopy` from the validators module.
    def deepcopy(x: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(x, Node):
            return _copy_ast(x, {} if memo is None else memo)
        return copy.deepcopy(x, memo)

    validators.deepcopy = deepcopy  # type: ignore[attr-defined]

    # DepthFirstTraverser: the same traversal, with the per-node `_processing_map()` rebuild and the
    # isinstance checks against moto's ABCMeta node classes (slow: `ABCMeta.__instancecheck__`)
    # replaced by look-ups cached per processor and node type. Equivalent because no moto AST class
    # registers virtual subclasses or defines __subclasshook__ (isinstance == issubclass of the
    # type) and no processor subclass overrides process / nodes_to_be_processed / the traversal.
    base_process = DepthFirstTraverser.process
    base_nodes = DepthFirstTraverser.nodes_to_be_processed
    base_traverse = DepthFirstTraverser.traverse_node_recursively
    base_pre = DepthFirstTraverser.pre_processing_of_child
    node_types = _node_types

    def handler_for(pmap: dict[Any, Any], t: type) -> Any:
        """The processor moto's `process` would call for a node of type t, or None."""
        for class_key, processor in pmap.items():
            if issubclass(t, class_key):
                return processor
        return None

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        cls = type(self)
        if (
            cls.process is not base_process
            or cls.nodes_to_be_processed is not base_nodes
            or cls.traverse_node_recursively is not traverse_node_recursively
        ):
            return base_traverse(self, node, child_id)  # pragma: no cover - no such moto class
        state = self.__dict__
        handlers = state.get("_standin_handlers")
        if handlers is None:
            handlers = state["_standin_handlers"] = {}
            # built once per processor instance: class keys -> bound methods, as moto builds it
            state["_standin_map"] = self._processing_map()
        pmap = state["_standin_map"]
        pre = None if cls.pre_processing_of_child is base_pre else self.pre_processing_of_child

        def walk(node: Any, child_id: int) -> Any:
            # moto's traverse_node_recursively, for this processor
            t = type(node)
            known = node_types.get(t)
            if known is None:
                known = node_types[t] = issubclass(t, Node)
            if not known:
                return node
            parent_node = node.parent
            children = node.children
            if children is not None:
                for i, child_node in enumerate(children):
                    if pre is not None:
                        pre(node, i)
                    walk(child_node, i)
            if t in handlers:
                handler = handlers[t]
            else:
                handler = handlers[t] = handler_for(pmap, t)
            if handler is not None:
                node = handler(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        return walk(node, child_id)

    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively  # type: ignore[method-assign]

    # Node.find_clauses: same walk, with the two ABC isinstance checks cached per child type.
    from moto.dynamodb.parsing.ast_nodes import Expression, UpdateExpressionFunction

    descend: dict[type, bool] = {}

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        clauses = []
        for child in self.children or []:
            t = type(child)
            if t in clause_types:
                clauses.append(child)
                continue
            d = descend.get(t)
            if d is None:
                d = descend[t] = issubclass(t, Expression) or issubclass(t, UpdateExpressionFunction)
            if d:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    Node.find_clauses = find_clauses  # type: ignore[method-assign]


def _install_condition_lex_cache() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if getattr(ConditionExpressionParser._lex_condition_expression, "_standin", False):
        return
    original = ConditionExpressionParser._lex_condition_expression
    P = ConditionExpressionParser

    def lex(self: Any) -> Any:
        expr = self.condition_expression
        if type(self) is not P or not isinstance(expr, str):
            return original(self)
        tokens = _condition_tokens.get(expr)
        if tokens is None:
            nodes = original(self)  # raises ValueError for a bad expression: not cached
            # every lexed node is a LITERAL leaf with value == text and no children
            if all(n.kind == P.Kind.LITERAL and n.value == n.text and n.children == [] for n in nodes):
                _remember(_condition_tokens, expr, tuple((n.nonterminal, n.text) for n in nodes))
            return nodes
        return deque(
            P.Node(nonterminal=nt, kind=P.Kind.LITERAL, text=text, value=text, children=[])
            for nt, text in tokens
        )

    lex._standin = True  # type: ignore[attr-defined]
    ConditionExpressionParser._lex_condition_expression = lex  # type: ignore[method-assign]


_SCALAR_TYPES = frozenset(("S", "N", "B", "BOOL", "NULL"))


def _condition_key(parser: Any) -> tuple[Any, ...] | None:
    """A hashable key for everything `ConditionExpressionParser.parse` reads — the expression, the
    ExpressionAttributeNames and the ExpressionAttributeValues — or None when some value is not a
    scalar ({"S": str}, {"N": str}, {"B": str}, {"BOOL": bool}, {"NULL": bool}). Only then is the
    parsed condition free of mutable request data (its AttributeValue operands keep the scalar)."""
    names = parser.expression_attribute_names
    values = parser.expression_attribute_values
    if names is None:
        names_key: Any = None
    elif type(names) is dict and all(type(v) is str for v in names.values()):
        names_key = tuple(names.items())
    else:
        return None
    if values is None:
        values_key: Any = None
    elif type(values) is dict:
        items = []
        for k, v in values.items():
            if type(v) is not dict or len(v) != 1:
                return None
            ((t, inner),) = v.items()
            if t not in _SCALAR_TYPES or type(inner) not in (str, bool):
                return None
            items.append((k, t, inner))
        values_key = tuple(items)
    else:
        return None
    return (parser.condition_expression, names_key, values_key)


def _install_condition_parse_cache() -> None:
    """Memoises `ConditionExpressionParser.parse` per (expression, names, scalar values).

    moto parses the same condition with the same names/values 2-3 times per request (request
    validation in responses.py, then the backend; TransactWriteItems: responses, our transaction
    loop and the put/update it calls). The parsed `Op` tree is immutable after construction (its
    `expr(item)` methods only read it) and, with scalar values only, holds no request objects, so
    requests with an equal key may share it. The parser's side outputs `expr_attr_names_found` /
    `expr_attr_values_found` (read, and extended, by responses.py) are replayed into each parser's
    own lists. Parse errors are not cached."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if getattr(ConditionExpressionParser.parse, "_standin", False):
        return
    original = ConditionExpressionParser.parse
    results: dict[tuple[Any, ...], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}

    def parse(self: Any) -> Any:
        if type(self) is not ConditionExpressionParser or not isinstance(self.condition_expression, str):
            return original(self)
        try:
            key = _condition_key(self)
        except Exception:  # noqa: BLE001 - odd input: moto's own parse reports it
            key = None
        if key is None:
            return original(self)
        hit = results.get(key)
        if hit is not None:
            op, names_found, values_found = hit
            self.expr_attr_names_found.extend(names_found)
            self.expr_attr_values_found.extend(values_found)
            return op
        n0, v0 = len(self.expr_attr_names_found), len(self.expr_attr_values_found)
        op = original(self)
        _remember(
            results,
            key,
            (op, tuple(self.expr_attr_names_found[n0:]), tuple(self.expr_attr_values_found[v0:])),
        )
        return op

    parse._standin = True  # type: ignore[attr-defined]
    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


def _ast_string(ast: Any) -> str | None:
    """The expression string of a memoised UpdateExpression AST, None for any other object (an id
    is only trusted while the cache still holds that very object)."""
    text = _ast_strings.get(id(ast))
    if text is not None and _update_asts.get(text) is ast:
        return text
    return None


def _install_structural_check_cache() -> None:
    """Runs the three structural checks of an UpdateExpression once per (expression, names, table
    key attributes) instead of on every request.

    `UpdateExpressionValidator` runs ten processors over a fresh copy of the AST; the first three —
    ActionCountValidator (at most one SET/REMOVE/ADD clause), OverlappingPathsValidator (no path
    updated twice) and UpdateHashRangeKeyValidator (no key attribute updated) — only read the tree,
    the ExpressionAttributeNames and the table's key attribute names, raise or return each node
    unchanged. The tree they read is a copy of the memoised, never-mutated AST of the expression
    string. So once they passed for a key they pass again; a failure is not recorded and is
    raised every time. The other seven processors (values, item, types) run on every request."""
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateExpressionValidator,
        UpdateHashRangeKeyValidator,
    )

    if getattr(UpdateExpressionValidator.validate, "_standin", False):
        return
    structural = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    original_init = UpdateExpressionValidator.__init__

    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, expression, *args, **kwargs)
        key = None
        text = _ast_string(expression)
        names = self.expression_attribute_names
        if text is not None and (names is None or (type(names) is dict and all(
            type(k) is str and type(v) is str for k, v in names.items()
        ))):
            try:
                keys = tuple(self.table.table_key_attrs)
                key = (text, None if names is None else tuple(names.items()), keys)
            except Exception:  # noqa: BLE001 - odd table: no caching
                key = None
        self._standin_key = key

    def validate(self: Any) -> Any:
        key = self.__dict__.get("_standin_key")
        processors = self.processors
        shape_ok = len(processors) > 3 and tuple(type(p) for p in processors[:3]) == structural
        skip = key is not None and shape_ok and key in _structural_ok
        n = self.node_to_validate
        for i, processor in enumerate(processors):
            if skip and i < 3:
                continue
            n = processor.traverse(n)
            if i == 2 and key is not None and shape_ok and not skip:
                _remember(_structural_ok, key, True)  # the three structural checks passed
        return n

    __init__._standin = True  # type: ignore[attr-defined]
    validate._standin = True  # type: ignore[attr-defined]
    UpdateExpressionValidator.__init__ = __init__  # type: ignore[method-assign]
    UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]


def _install_item_size_check() -> None:
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    if getattr(LimitedSizeDict.__setitem__, "_standin", False):
        return
    ItemSizeTooLarge = dynamo_type.ItemSizeTooLarge

    def size_of(x: Any) -> int:
        # exactly moto's `item.size() if type(item) is DynamoType else bytesize(str(item))`
        if type(x) is DynamoType:
            t = x.type
            if t == "N":  # DynamoType.size: is_number() -> len(str(value))
                return len(str(x.value))
            if t == "S" and type(x.value) is str:  # not a set/list/map/bool -> bytesize(value)
                return len(x.value.encode("utf-8"))
            return x.size()  # type: ignore[no-any-return]
        return bytesize(str(x))

    def __setitem__(self: Any, key: str, value: Any) -> None:
        current_item_size = 0
        for k in self.keys():
            current_item_size += size_of(k)
        for v in self.values():
            current_item_size += size_of(v)
        new_item_size = bytesize(key) + size_of(value)
        if (current_item_size + new_item_size) > 405000:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    __setitem__._standin = True  # type: ignore[attr-defined]
    LimitedSizeDict.__setitem__ = __setitem__  # type: ignore[method-assign,assignment]


class _KeywordList(list):  # type: ignore[type-arg]
    """A list whose `in` is a set look-up (same members, so the same answers)."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(words)
        self._members = frozenset(words)

    def __contains__(self, x: object) -> bool:
        try:
            return x in self._members
        except TypeError:  # unhashable: only list.__contains__ can say
            return list.__contains__(self, x)


def _install_reserved_keyword_set() -> None:
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    words = ReservedKeywords.get_reserved_keywords()
    if not isinstance(words, _KeywordList):
        ReservedKeywords.KEYWORDS = _KeywordList(list(words))


def install() -> None:
    _install_reserved_keyword_set()
    _install_item_size_check()
    _install_update_expression_cache()
    _install_structural_check_cache()
    _install_condition_lex_cache()
    _install_condition_parse_cache()
