import { AegisError } from '../../errors.js';

/**
 * successCondition / failureCondition expressions, evaluated the way Argo
 * Rollouts evaluates them (utils/evaluate/evaluate.go, EvalCondition): an
 * expr-lang (`github.com/antonmedv/expr`, now `expr-lang/expr`) expression
 * with `result` bound to the measurement value and Argo's helpers
 * `isNaN`, `isInf`, `isNil`, `default`, `asInt`, `asFloat` in scope, whose
 * value must be a boolean.
 *
 * Why a parser of our own: the condition language is the product's contract
 * (the same text runs here and in an Argo AnalysisTemplate), so it must be
 * evaluated with expr's semantics and nothing more. No npm package speaks
 * expr-lang: the generic evaluators (expr-eval — which had a code-injection
 * CVE in 2025 —, expression-eval/jsep, math-expression-evaluator) have
 * JavaScript or calculator semantics (no `and`/`or`/`not`, no `{# < 1}`
 * predicates, no negative indexes, different errors on type mismatches), and
 * eval/new Function is out of the question for text from a spec file. This is
 * a small tokenizer + Pratt parser + tree walker over the subset Argo users
 * write, refusing everything else at parse time with a message that says so.
 *
 * Grammar (precedence low → high, as in expr):
 *   or: `||` `or`  ·  and: `&&` `and`  ·  comparison: `==` `!=` `<` `<=` `>` `>=` `in` `not in`
 *   additive: `+` `-`  ·  multiplicative: `*` `/`  ·  unary: `!` `not` (binds looser than `*`), `-` `+`
 *   postfix: `x[i]` (negative i counts from the end)  ·  calls: `f(a, b)`
 *   primaries: numbers (`1`, `0.05`, `.5`, `1e-3`, `1_000`), `true`, `false`, `nil`, `result`,
 *   `(…)`, and `{ … # … }` predicates as the second argument of `all`/`any`/`none`/`one`.
 * Functions: len, isNaN, isInf, isNil, default, asInt, asFloat, all, any, none, one.
 * Not supported (refused when parsed): strings, member access (`result.x`),
 * `%` `**` `^`, `?:` `??`, ranges, array/map literals, and any other name.
 */

/** What a metric provider measured: a scalar, a vector (Prometheus instant vector), or nothing. */
export type ResultValue = number | readonly number[] | null;

export type ConditionOutcome = { ok: true; value: boolean } | { ok: false; error: string };

export interface Condition {
  readonly source: string;
  /**
   * True when the expression calls one of the functions that deal with missing
   * data (`isNaN`, `isNil`, `default`, `len`): the author then decided what an
   * empty or NaN result means, and the missing-data guard (judge.ts) defers to it.
   */
  readonly handlesMissingData: boolean;
  evaluate(result: ResultValue): ConditionOutcome;
}

const MAX_LENGTH = 2000;
const MAX_DEPTH = 64;
export const CONDITION_HINT =
  'Write an expression over `result` in the Argo Rollouts condition language, e.g. `result < 0.05`, `result[0] >= 0.95`, ' +
  '`len(result) > 0 && result[0] < 0.05` or `all(result, {# < 0.5})`; see docs/rollouts.md ("Conditions").';

// ---------------------------------------------------------------------------
// Tokens

type TokenKind = 'num' | 'name' | 'op' | 'eof';
interface Token {
  kind: TokenKind;
  text: string;
  pos: number;
}

const OPERATORS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '+', '-', '*', '/', '(', ')', '[', ']', ',', '{', '}', '#'];
const REFUSED_OPERATORS: Record<string, string> = {
  '%': 'the modulo operator `%` is not supported',
  '^': 'the power operator `^` is not supported',
  '?': 'the conditional operators `?:` and `??` are not supported',
  '.': 'member access (`result.field`) is not supported: results here are numbers or vectors of numbers',
  ':': '`:` is not supported (neither slices such as result[1:2] nor the `?:` operator are part of the language)',
  '=': 'assignment is not supported; did you mean `==`?',
  '&': 'use `&&` or `and`',
  '|': 'use `||` or `or`',
};

function tokenize(source: string, fail: (msg: string, pos: number) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const num = /^(?:(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)/.exec(source.slice(i));
    if (num) {
      if (/[A-Za-z_$]/.test(source[i + num[0].length] ?? '')) fail(`malformed number "${source.slice(i).match(/^[\w.$]+/)![0]}"`, i);
      tokens.push({ kind: 'num', text: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const name = /^[A-Za-z_$][\w$]*/.exec(source.slice(i));
    if (name) {
      tokens.push({ kind: 'name', text: name[0], pos: i });
      i += name[0].length;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') fail('strings are not supported: results here are numbers or vectors of numbers', i);
    if (source.startsWith('**', i)) fail('the power operator `**` is not supported', i);
    if (source.startsWith('??', i)) fail('the nil-coalescing operator `??` is not supported; use default(result, value)', i);
    if (source.startsWith('..', i)) fail('ranges (`..`) are not supported', i);
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', text: op, pos: i });
      i += op.length;
      continue;
    }
    fail(REFUSED_OPERATORS[c] ?? `unexpected character ${JSON.stringify(c)}`, i);
  }
  tokens.push({ kind: 'eof', text: '', pos: source.length });
  return tokens;
}

// ---------------------------------------------------------------------------
// Syntax tree

type BinaryOp = '||' | '&&' | '==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not in' | '+' | '-' | '*' | '/';
type Node =
  | { k: 'num'; v: number }
  | { k: 'bool'; v: boolean }
  | { k: 'nil' }
  | { k: 'result' }
  | { k: 'elem'; pos: number }
  | { k: 'unary'; op: '!' | '-' | '+'; e: Node; pos: number }
  | { k: 'bin'; op: BinaryOp; l: Node; r: Node; pos: number }
  | { k: 'index'; target: Node; index: Node; pos: number }
  | { k: 'call'; fn: FunctionName; args: Node[]; pos: number }
  | { k: 'closure'; body: Node };

type FunctionName = 'len' | 'isNaN' | 'isInf' | 'isNil' | 'default' | 'asInt' | 'asFloat' | 'all' | 'any' | 'none' | 'one';
const FUNCTIONS: Record<FunctionName, { arity: number; predicate?: true; missingData?: true }> = {
  len: { arity: 1, missingData: true },
  isNaN: { arity: 1, missingData: true },
  isInf: { arity: 1 },
  isNil: { arity: 1, missingData: true },
  default: { arity: 2, missingData: true },
  asInt: { arity: 1 },
  asFloat: { arity: 1 },
  all: { arity: 2, predicate: true },
  any: { arity: 2, predicate: true },
  none: { arity: 2, predicate: true },
  one: { arity: 2, predicate: true },
};

/** Binding powers (expr's precedences: or 10, and 15, comparison 20, + - 30, * / 60, unary not 50, unary - 90). */
const INFIX: Record<string, { op: BinaryOp; bp: number }> = {
  '||': { op: '||', bp: 10 },
  or: { op: '||', bp: 10 },
  '&&': { op: '&&', bp: 15 },
  and: { op: '&&', bp: 15 },
  '==': { op: '==', bp: 20 },
  '!=': { op: '!=', bp: 20 },
  '<': { op: '<', bp: 20 },
  '<=': { op: '<=', bp: 20 },
  '>': { op: '>', bp: 20 },
  '>=': { op: '>=', bp: 20 },
  in: { op: 'in', bp: 20 },
  '+': { op: '+', bp: 30 },
  '-': { op: '-', bp: 30 },
  '*': { op: '*', bp: 60 },
  '/': { op: '/', bp: 60 },
};

class Parser {
  #pos = 0;
  #depth = 0;
  #closures = 0;
  missingData = false;
  private readonly tokens: Token[];
  private readonly fail: (msg: string, pos: number) => never;

  constructor(tokens: Token[], fail: (msg: string, pos: number) => never) {
    this.tokens = tokens;
    this.fail = fail;
  }

  parse(): Node {
    const node = this.#expr(0);
    const next = this.#peek();
    if (next.kind !== 'eof') this.fail(`unexpected ${describe(next)} after a complete expression`, next.pos);
    return node;
  }

  #peek(offset = 0): Token {
    return this.tokens[Math.min(this.#pos + offset, this.tokens.length - 1)]!;
  }

  #next(): Token {
    const t = this.#peek();
    if (t.kind !== 'eof') this.#pos++;
    return t;
  }

  #expect(text: string): Token {
    const t = this.#next();
    if (t.kind !== 'op' || t.text !== text) this.fail(`expected "${text}" but found ${describe(t)}`, t.pos);
    return t;
  }

  #expr(minBp: number): Node {
    if (++this.#depth > MAX_DEPTH) this.fail(`expression nests more than ${MAX_DEPTH} levels deep`, this.#peek().pos);
    let left = this.#prefix();
    for (;;) {
      const t = this.#peek();
      let info: { op: BinaryOp; bp: number } | undefined;
      let width = 1;
      if (t.kind === 'name' && t.text === 'not' && this.#peek(1).kind === 'name' && this.#peek(1).text === 'in') {
        info = { op: 'not in', bp: 20 };
        width = 2;
      } else if (t.kind === 'op' || t.kind === 'name') {
        info = Object.hasOwn(INFIX, t.text) ? INFIX[t.text] : undefined;
      }
      if (!info || info.bp <= minBp) break;
      for (let i = 0; i < width; i++) this.#next();
      const right = this.#expr(info.bp);
      left = { k: 'bin', op: info.op, l: left, r: right, pos: t.pos };
    }
    this.#depth--;
    return left;
  }

  #prefix(): Node {
    const t = this.#next();
    let node: Node;
    if (t.kind === 'eof') this.fail('unexpected end of expression', t.pos);
    if (t.kind === 'num') {
      const v = Number(t.text.replaceAll('_', ''));
      if (!Number.isFinite(v)) this.fail(`number ${t.text} is out of range`, t.pos);
      node = { k: 'num', v };
    } else if (t.kind === 'op' && (t.text === '!' || t.text === '-' || t.text === '+')) {
      // expr: unary `!`/`not` has precedence 50 (looser than * /), unary +/- 90.
      const e = this.#expr(t.text === '!' ? 49 : 89);
      return { k: 'unary', op: t.text, e, pos: t.pos };
    } else if (t.kind === 'name' && t.text === 'not') {
      const e = this.#expr(49);
      return { k: 'unary', op: '!', e, pos: t.pos };
    } else if (t.kind === 'op' && t.text === '(') {
      node = this.#expr(0);
      this.#expect(')');
    } else if (t.kind === 'op' && t.text === '#') {
      if (this.#closures === 0) this.fail('`#` is only meaningful inside a predicate such as all(result, {# < 0.5})', t.pos);
      node = { k: 'elem', pos: t.pos };
    } else if (t.kind === 'op' && t.text === '{') {
      this.fail('a `{…}` predicate is only allowed as the second argument of all, any, none or one', t.pos);
    } else if (t.kind === 'op' && t.text === '[') {
      this.fail('array literals are not supported', t.pos);
    } else if (t.kind === 'name') {
      node = this.#name(t);
    } else {
      this.fail(`unexpected ${describe(t)}`, t.pos);
    }
    return this.#postfix(node);
  }

  #name(t: Token): Node {
    switch (t.text) {
      case 'true':
        return { k: 'bool', v: true };
      case 'false':
        return { k: 'bool', v: false };
      case 'nil':
        return { k: 'nil' };
      case 'result':
        return { k: 'result' };
    }
    if (Object.hasOwn(FUNCTIONS, t.text)) {
      const fn = t.text as FunctionName;
      const spec = FUNCTIONS[fn];
      if (this.#peek().kind !== 'op' || this.#peek().text !== '(') this.fail(`${fn} is a function: call it as ${fn}(…)`, t.pos);
      this.#next();
      const args: Node[] = [];
      if (!(this.#peek().kind === 'op' && this.#peek().text === ')')) {
        for (;;) {
          if (spec.predicate && args.length === 1) args.push(this.#closure(fn));
          else args.push(this.#expr(0));
          if (this.#peek().kind === 'op' && this.#peek().text === ',') {
            this.#next();
            continue;
          }
          break;
        }
      }
      this.#expect(')');
      if (args.length !== spec.arity) this.fail(`${fn}() takes ${spec.arity} argument${spec.arity === 1 ? '' : 's'}, got ${args.length}`, t.pos);
      if (spec.missingData) this.missingData = true;
      return { k: 'call', fn, args, pos: t.pos };
    }
    if (t.text === 'in' || t.text === 'and' || t.text === 'or') this.fail(`unexpected "${t.text}"`, t.pos);
    this.fail(`unknown name "${t.text}" (known: result, true, false, nil and the functions ${Object.keys(FUNCTIONS).join(', ')})`, t.pos);
  }

  #closure(fn: string): Node {
    const open = this.#peek();
    if (open.kind !== 'op' || open.text !== '{') this.fail(`the second argument of ${fn}() must be a predicate such as {# < 0.5}`, open.pos);
    this.#next();
    this.#closures++;
    const body = this.#expr(0);
    this.#closures--;
    this.#expect('}');
    return { k: 'closure', body };
  }

  #postfix(node: Node): Node {
    for (;;) {
      const t = this.#peek();
      if (t.kind === 'op' && t.text === '[') {
        this.#next();
        const index = this.#expr(0);
        this.#expect(']');
        node = { k: 'index', target: node, index, pos: t.pos };
      } else if (t.kind === 'op' && t.text === '(') {
        this.fail('only the built-in functions can be called', t.pos);
      } else {
        return node;
      }
    }
  }
}

function describe(t: Token): string {
  if (t.kind === 'eof') return 'end of expression';
  return `"${t.text}"`;
}

// ---------------------------------------------------------------------------
// Evaluation

type Value = number | boolean | null | readonly number[];

class EvalError extends Error {}

function typeName(v: Value): string {
  if (v === null) return 'nil';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'number' ? 'number' : 'bool';
}

function isArray(v: Value): v is readonly number[] {
  return Array.isArray(v);
}

function equal(a: Value, b: Value): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (isArray(a) && isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b; // nil == nil, bool == bool; mismatched types are simply unequal, as in expr
}

class Evaluator {
  readonly #elems: number[] = [];
  private readonly result: ResultValue;

  constructor(result: ResultValue) {
    this.result = result;
  }

  eval(n: Node): Value {
    switch (n.k) {
      case 'num':
        return n.v;
      case 'bool':
        return n.v;
      case 'nil':
        return null;
      case 'result':
        return this.result;
      case 'elem':
        return this.#elems[this.#elems.length - 1]!;
      case 'closure':
        throw new EvalError('a predicate cannot be used as a value');
      case 'unary': {
        const v = this.eval(n.e);
        if (n.op === '!') {
          if (typeof v !== 'boolean') throw new EvalError(`invalid operation: !${typeName(v)} (needs a bool)`);
          return !v;
        }
        if (typeof v !== 'number') throw new EvalError(`invalid operation: ${n.op}${typeName(v)} (needs a number)`);
        return n.op === '-' ? -v : v;
      }
      case 'bin':
        return this.#binary(n.op, n.l, n.r);
      case 'index': {
        const target = this.eval(n.target);
        const index = this.eval(n.index);
        if (!isArray(target)) throw new EvalError(`cannot index ${typeName(target)} (only vectors can be indexed)`);
        if (typeof index !== 'number' || !Number.isInteger(index)) throw new EvalError(`invalid index ${String(index)}: needs an integer`);
        const at = index < 0 ? target.length + index : index;
        if (at < 0 || at >= target.length) throw new EvalError(`index out of range: ${index} (vector length ${target.length})`);
        return target[at]!;
      }
      case 'call':
        return this.#call(n.fn, n.args);
    }
  }

  #binary(op: BinaryOp, ln: Node, rn: Node): Value {
    if (op === '&&' || op === '||') {
      // Short-circuit, as expr does: `len(result) > 0 && result[0] < 1` never indexes an empty vector.
      const l = this.eval(ln);
      if (typeof l !== 'boolean') throw new EvalError(`invalid operation: ${typeName(l)} ${op} … (needs bools)`);
      if (op === '&&' ? !l : l) return l;
      const r = this.eval(rn);
      if (typeof r !== 'boolean') throw new EvalError(`invalid operation: bool ${op} ${typeName(r)} (needs bools)`);
      return r;
    }
    const l = this.eval(ln);
    const r = this.eval(rn);
    switch (op) {
      case '==':
        return equal(l, r);
      case '!=':
        return !equal(l, r);
      case 'in':
      case 'not in': {
        if (!isArray(r)) throw new EvalError(`invalid operation: ${typeName(l)} in ${typeName(r)} (needs a vector on the right)`);
        const found = r.some((x) => equal(x, l));
        return op === 'in' ? found : !found;
      }
    }
    if (typeof l !== 'number' || typeof r !== 'number') {
      throw new EvalError(`invalid operation: ${typeName(l)} ${op} ${typeName(r)} (mismatched types; a vector needs an index such as result[0])`);
    }
    switch (op) {
      case '<':
        return l < r;
      case '<=':
        return l <= r;
      case '>':
        return l > r;
      case '>=':
        return l >= r;
      case '+':
        return l + r;
      case '-':
        return l - r;
      case '*':
        return l * r;
      case '/':
        return l / r; // float division, as expr: 1/0 is +Inf, 0/0 NaN
    }
  }

  #call(fn: FunctionName, args: Node[]): Value {
    switch (fn) {
      case 'isNil':
        // Argo's isNil ignores its argument and reports whether the measurement value is nil
        // (evaluate.go: isNilFunc(resultValue) returns func(_ interface{}) bool).
        this.eval(args[0]!);
        return this.result === null;
      case 'default': {
        // Argo's default ignores its first argument: it yields the second when the measurement
        // value is nil, otherwise the measurement value itself (evaluate.go: defaultFunc).
        this.eval(args[0]!);
        const fallback = this.eval(args[1]!);
        return this.result === null ? fallback : this.result;
      }
      case 'len': {
        const v = this.eval(args[0]!);
        if (!isArray(v)) throw new EvalError(`invalid argument for len (type ${typeName(v)})`);
        return v.length;
      }
      case 'isNaN':
      case 'isInf':
      case 'asInt':
      case 'asFloat': {
        const v = this.eval(args[0]!);
        if (typeof v !== 'number') throw new EvalError(`${fn}() needs a number, got ${typeName(v)}${isArray(v) ? ' (use an index such as result[0])' : ''}`);
        if (fn === 'isNaN') return Number.isNaN(v);
        if (fn === 'isInf') return v === Infinity || v === -Infinity;
        return fn === 'asInt' ? Math.trunc(v) : v;
      }
      case 'all':
      case 'any':
      case 'none':
      case 'one': {
        const v = this.eval(args[0]!);
        if (!isArray(v)) throw new EvalError(`${fn}() needs a vector, got ${typeName(v)}`);
        const body = (args[1] as { k: 'closure'; body: Node }).body;
        let hits = 0;
        for (const x of v) {
          this.#elems.push(x);
          let ok: Value;
          try {
            ok = this.eval(body);
          } finally {
            this.#elems.pop();
          }
          if (typeof ok !== 'boolean') throw new EvalError(`the predicate of ${fn}() must give a bool, got ${typeName(ok)}`);
          if (ok) hits++;
          if (fn === 'all' && !ok) return false;
          if (fn === 'any' && ok) return true;
          if (fn === 'none' && ok) return false;
        }
        if (fn === 'all' || fn === 'none') return true;
        if (fn === 'any') return false;
        return hits === 1;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Public API

class CompiledCondition implements Condition {
  readonly source: string;
  readonly handlesMissingData: boolean;
  readonly #ast: Node;

  constructor(source: string, ast: Node, handlesMissingData: boolean) {
    this.source = source;
    this.#ast = ast;
    this.handlesMissingData = handlesMissingData;
  }

  evaluate(result: ResultValue): ConditionOutcome {
    try {
      const value = new Evaluator(result).eval(this.#ast);
      // evaluate.go: a non-bool output is an error ("expected bool, but got …").
      if (typeof value !== 'boolean') return { ok: false, error: `expected bool, but got ${typeName(value)}` };
      return { ok: true, value };
    } catch (err) {
      if (err instanceof EvalError) return { ok: false, error: err.message };
      throw err;
    }
  }
}

class SyntaxFailure {
  readonly message: string;
  readonly pos: number;
  constructor(message: string, pos: number) {
    this.message = message;
    this.pos = pos;
  }
}

/** Why `source` is not a condition (with the column), or undefined when it is one. */
export function conditionSyntaxError(source: string): string | undefined {
  const r = compile(source);
  return r instanceof SyntaxFailure ? `${r.message} (column ${r.pos + 1} of ${JSON.stringify(source)})` : undefined;
}

function compile(source: string): Condition | SyntaxFailure {
  const fail = (msg: string, pos: number): never => {
    throw new SyntaxFailure(msg, pos);
  };
  try {
    if (source.length > MAX_LENGTH) fail(`longer than ${MAX_LENGTH} characters`, 0);
    if (source.trim() === '') fail('empty expression', 0);
    const parser = new Parser(tokenize(source, fail), fail);
    const ast = parser.parse();
    return new CompiledCondition(source, ast, parser.missingData);
  } catch (err) {
    if (err instanceof SyntaxFailure) return err;
    throw err;
  }
}

/**
 * Parses a condition; throws ROLLOUT_SPEC_INVALID naming `field` (e.g.
 * `analysisTemplates[0].metrics[1].successCondition`) and the column.
 */
export function compileCondition(source: string, field = 'condition'): Condition {
  const r = compile(source);
  if (r instanceof SyntaxFailure) {
    throw new AegisError('ROLLOUT_SPEC_INVALID', `${field}: ${r.message} (column ${r.pos + 1} of ${JSON.stringify(source)})`, {
      hint: CONDITION_HINT,
      details: { field, column: r.pos + 1, condition: source },
    });
  }
  return r;
}

const cache = new Map<string, Condition>();
const CACHE_LIMIT = 512;

/** compileCondition with a small cache: the judge evaluates the same few conditions again and again. */
export function condition(source: string): Condition {
  let c = cache.get(source);
  if (!c) {
    c = compileCondition(source);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(source, c);
  }
  return c;
}

/** Parses (cached) and evaluates; a parse error is reported as an evaluation error, as Argo reports compile errors. */
export function evaluateCondition(source: string, result: ResultValue): ConditionOutcome {
  let c: Condition;
  try {
    c = condition(source);
  } catch (err) {
    if (err instanceof AegisError) return { ok: false, error: err.message };
    throw err;
  }
  return c.evaluate(result);
}
