/**
 * The condition language: the expr-lang subset Argo Rollouts users write,
 * evaluated with expr's semantics (short-circuit, NaN comparisons, type
 * errors as evaluation errors, Argo's isNaN/isInf/isNil/default helpers), and
 * everything outside the grammar refused when parsed, naming the problem.
 */
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../../errors.js';
import { compileCondition, conditionSyntaxError, evaluateCondition, type ResultValue } from './condition.js';

const ok = (value: boolean) => ({ ok: true, value });

describe('evaluating conditions', () => {
  const cases: Array<[string, ResultValue, boolean]> = [
    // scalars and comparisons
    ['result < 0.05', 0.01, true],
    ['result < 0.05', 0.05, false],
    ['result <= 0.05', 0.05, true],
    ['result > 10', 11, true],
    ['result >= 10', 10, true],
    ['result == 1', 1, true],
    ['result != 1', 1, false],
    ['result == 1.0', 1, true],
    ['1_000 == 1000', 0, true],
    ['1e-3 == 0.001', 0, true],
    ['.5 == 0.5', 0, true],
    // vectors (Prometheus instant vectors)
    ['result[0] >= 0.95', [0.99], true],
    ['result[0] >= 0.95', [0.9, 0.99], false],
    ['result[1] >= 0.95', [0.9, 0.99], true],
    ['result[-1] >= 0.95', [0.9, 0.99], true],
    ['len(result) == 2', [1, 2], true],
    ['len(result) == 0 || result[0] >= 0.95', [], true],
    ['len(result) > 0 && result[0] >= 0.95', [], false],
    ['2 in result', [1, 2], true],
    ['3 in result', [1, 2], false],
    ['3 not in result', [1, 2], true],
    ['all(result, {# < 0.05})', [0.01, 0.02], true],
    ['all(result, {# < 0.05})', [0.01, 0.2], false],
    ['all(result, {# < 0.05})', [], true],
    ['any(result, {# > 1})', [0.5, 2], true],
    ['any(result, {# > 1})', [], false],
    ['none(result, {# > 1})', [0.5], true],
    ['one(result, {# > 1})', [0, 2, 3], false],
    ['one(result, {# > 1})', [0, 2], true],
    ['all(result, {# > 0 && # < 1})', [0.5, 0.7], true],
    // logic, both spellings, precedence
    ['result > 0 && result < 1', 0.5, true],
    ['result > 0 and result < 1', 5, false],
    ['result < 0 || result > 1', 5, true],
    ['result < 0 or result > 1', 0.5, false],
    ['!(result > 1)', 0.5, true],
    ['not (result > 1)', 0.5, true],
    ['not false and false', 0, false],
    ['true || false && false', 0, true],
    ['(true || false) && false', 0, false],
    // arithmetic
    ['result * 100 < 5', 0.01, true],
    ['(result[0] + result[1]) / 2 < 0.5', [0.2, 0.4], true],
    ['-result < 0', 1, true],
    ['2 - 1 - 1 == 0', 0, true],
    ['8 / 4 / 2 == 1', 0, true],
    ['1 + 2 * 3 == 7', 0, true],
    ['1 / 0 > 1e308', 0, true],
    // NaN and Inf: NaN compares false with everything
    ['result >= 0.95', NaN, false],
    ['result < 0.95', NaN, false],
    ['result == result', NaN, false],
    ['isNaN(result)', NaN, true],
    ['isNaN(result) || result >= 0.95', NaN, true],
    ['isNaN(result[0])', [NaN], true],
    ['result >= 0.95', Infinity, true],
    ['isInf(result)', -Infinity, true],
    ['isInf(result)', 1, false],
    // nil (Argo's isNil / default look at the measurement value itself)
    ['result == nil', null, true],
    ['isNil(result)', null, true],
    ['isNil(result)', [], false],
    ['default(result, 0) < 0.05', null, true],
    ['default(result, 1) < 0.05', null, false],
    ['default(result, 1) < 0.05', 0.01, true],
    ['asInt(result) == 1', 1.9, true],
    ['asFloat(result) == 1.5', 1.5, true],
    // equality across types is simply false, as in expr
    ['result == 1', [1], false],
    ['result != nil', 0, true],
    ['result == true', 1, false],
  ];
  it.each(cases)('%s with result %s → %s', (source, result, expected) => {
    expect(evaluateCondition(source, result)).toEqual(ok(expected));
  });

  const errors: Array<[string, ResultValue, RegExp]> = [
    // an empty vector indexed: the Error Argo gives for `result[0]` on `[]`
    ['result[0] < 0.05', [], /index out of range: 0 \(vector length 0\)/],
    ['result[2] < 0.05', [1], /index out of range/],
    // a vector compared without an index
    ['result < 0.05', [0.01], /invalid operation: array < number/],
    ['result[0] < 0.05', 0.01, /cannot index number/],
    ['result < 0.05', null, /invalid operation: nil < number/],
    ['len(result) == 0', 1, /invalid argument for len \(type number\)/],
    ['isNaN(result)', [1], /isNaN\(\) needs a number, got array/],
    ['result[0.5] < 1', [1, 2], /invalid index 0.5/],
    ['all(result, {# < 1})', 1, /all\(\) needs a vector, got number/],
    ['all(result, {# + 1})', [1], /predicate of all\(\) must give a bool/],
    // the value must be a bool (evaluate.go: "expected bool, but got …")
    ['result + 1', 1, /expected bool, but got number/],
    ['result', 1, /expected bool, but got number/],
    ['default(result, 0)', [1], /expected bool, but got array/],
    // logic needs bools
    ['result && true', 1, /invalid operation: number && … \(needs bools\)/],
    ['true && result', 1, /invalid operation: bool && number/],
    ['!result', 1, /invalid operation: !number/],
    ['!result < 5', 1, /invalid operation: !number/], // `!` binds tighter than `<`, as in expr
    ['1 in result', 1, /needs a vector on the right/],
    // Argo's default() ignores its first argument: with a non-nil vector it yields the vector
    ['default(result[0], 0) < 0.05', [0.01], /invalid operation: array < number/],
  ];
  it.each(errors)('%s with result %s is an evaluation error', (source, result, message) => {
    const out = evaluateCondition(source, result);
    expect(out.ok).toBe(false);
    expect(!out.ok && out.error).toMatch(message);
  });

  it('short-circuits && and || like expr, so a guard keeps an empty vector from being indexed', () => {
    expect(evaluateCondition('false && result[0] > 1', [])).toEqual(ok(false));
    expect(evaluateCondition('true || result[0] > 1', [])).toEqual(ok(true));
    expect(evaluateCondition('true && result[0] > 1', []).ok).toBe(false);
  });

  it('reports whether a condition says what missing data means', () => {
    expect(compileCondition('result < 0.05').handlesMissingData).toBe(false);
    expect(compileCondition('all(result, {# < 0.05})').handlesMissingData).toBe(false);
    expect(compileCondition('isNaN(result) || result < 0.05').handlesMissingData).toBe(true);
    expect(compileCondition('len(result) > 0 && result[0] < 0.05').handlesMissingData).toBe(true);
    expect(compileCondition('default(result, 0) < 0.05').handlesMissingData).toBe(true);
    expect(compileCondition('isNil(result)').handlesMissingData).toBe(true);
  });
});

describe('refusing what is outside the grammar', () => {
  const refused: Array<[string, RegExp]> = [
    ['', /empty expression/],
    ['result <', /unexpected end of expression \(column 9/],
    ['result < < 1', /unexpected "<"/],
    ['(result < 1', /expected "\)" but found end of expression/],
    ['result < 1)', /unexpected "\)" after a complete expression/],
    ['result 1', /unexpected "1" after a complete expression/],
    ["result == 'true'", /strings are not supported/],
    ['result == "x"', /strings are not supported/],
    ['result.value > 1', /member access \(`result.field`\) is not supported/],
    ['result % 2 == 0', /modulo operator `%` is not supported/],
    ['result ** 2 > 1', /power operator `\*\*` is not supported/],
    ['result ^ 2 > 1', /power operator `\^` is not supported/],
    ['result > 1 ? true : false', /conditional operators/],
    ['result ?? 0 > 1', /nil-coalescing operator `\?\?` is not supported; use default/],
    ['result = 1', /assignment is not supported; did you mean `==`\?/],
    ['result & 1', /use `&&` or `and`/],
    ['result | 1', /use `\|\|` or `or`/],
    ['foo > 1', /unknown name "foo"/],
    ['Result > 1', /unknown name "Result"/],
    ['eval(result)', /unknown name "eval"/],
    ['constructor > 1', /unknown name "constructor"/],
    ['__proto__ > 1', /unknown name "__proto__"/],
    ['len > 1', /len is a function: call it as len\(…\)/],
    ['len(result, 1) > 1', /len\(\) takes 1 argument, got 2/],
    ['default(result) > 1', /default\(\) takes 2 arguments, got 1/],
    ['all(result, # < 1)', /second argument of all\(\) must be a predicate/],
    ['# < 1', /`#` is only meaningful inside a predicate/],
    ['{# < 1}', /only allowed as the second argument of all, any, none or one/],
    ['[1, 2] == result', /array literals are not supported/],
    ['result[1:2] == 1', /slices such as result\[1:2\]/],
    ['(result)(1)', /only the built-in functions can be called/],
    ['1..3 == result', /ranges/],
    ['1abc > 0', /malformed number "1abc"/],
    ['result < 1 and', /unexpected end of expression/],
    ['result; 1', /unexpected character ";"/],
    ['result < 1e999', /out of range/],
  ];
  it.each(refused)('refuses %j', (source, message) => expectRefused(source, message));

  it('refuses an overlong expression and one nested too deeply (no stack exhaustion)', () => {
    expectRefused('x'.repeat(2001), /longer than 2000 characters/);
    expectRefused('('.repeat(100) + 'true' + ')'.repeat(100), /nests more than 64 levels deep/);
    expectRefused('!'.repeat(100) + 'true', /nests more than 64 levels deep/);
  });

  function expectRefused(source: string, message: RegExp): void {
    expect(conditionSyntaxError(source)).toMatch(message);
    try {
      compileCondition(source, 'analysisTemplates[0].metrics[0].successCondition');
      expect.unreachable();
    } catch (err) {
      expect(isAegisError(err, 'ROLLOUT_SPEC_INVALID')).toBe(true);
      expect((err as Error).message).toMatch(/^analysisTemplates\[0\]\.metrics\[0\]\.successCondition: /);
      expect((err as Error).message).toMatch(message);
      expect((err as { hint?: string }).hint).toMatch(/result\[0\] >= 0\.95/);
    }
  }

  it('never runs code: a JavaScript-looking payload is refused, not executed', () => {
    for (const src of ['process.exit(1)', 'globalThis.x = 1', 'require("fs")', 'this.constructor', 'result.constructor.constructor("return 1")()']) {
      expect(conditionSyntaxError(src)).toBeDefined();
    }
  });

  it('reports a parse error as an evaluation error when evaluated directly, as Argo reports a compile error', () => {
    const out = evaluateCondition('result <', 1);
    expect(out.ok).toBe(false);
  });
});
