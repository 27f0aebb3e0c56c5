import { AegisError } from '../errors.js';

/**
 * Which alerts start a retrain. Only firing alerts do; then the alert's
 * `alertname` label must be one of `alertnames`, its `severity` label one of
 * `severities` (when any are given), and every matcher must hold.
 *
 * Matchers are written as in Alertmanager's config (`matchers:`):
 * `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`; quotes
 * are optional for simple values. As in Alertmanager, regexes are anchored
 * (`^(?:regex)$`) and a missing label counts as the empty string. Regexes run
 * on JavaScript's engine, not Go's RE2: the common syntax is the same, but
 * RE2-only constructs (e.g. `(?i)` flags groups) are rejected at start-up.
 */
export interface AlertFilterConfig {
  alertnames: readonly string[];
  severities: readonly string[];
  matchers: readonly string[];
}

export const DEFAULT_FILTERS: AlertFilterConfig = Object.freeze({ alertnames: Object.freeze(['ModelDrift']), severities: Object.freeze([]), matchers: Object.freeze([]) });

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
  test(labels: Readonly<Record<string, string>>): boolean;
}

// Label names: Prometheus' classic form, or a quoted UTF-8 name (Alertmanager >= 0.27).
const MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\s*(=~|!~|!=|=)\s*(.*?)\s*$/s;

function unquote(text: string, what: string, source: string): string {
  if (!text.startsWith('"')) {
    if (/[",{}]/.test(text)) throw matcherError(source, `${what} ${text} must be quoted`);
    return text;
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'string') return v;
  } catch {
    // reported below
  }
  throw matcherError(source, `${what} ${text} is not a well-formed double-quoted string`);
}

function matcherError(source: string, why: string): AegisError {
  return new AegisError('CONFIG_INVALID', `invalid alert matcher ${JSON.stringify(source)}: ${why}`, {
    hint: 'Write matchers as in Alertmanager: name="value", name!="value", name=~"regex" or name!~"regex" (alerts.filters.matchers).',
    details: { matcher: source },
  });
}

export function parseMatcher(source: string): Matcher {
  const m = MATCHER.exec(source);
  if (!m) throw matcherError(source, 'expected name, an operator (=, !=, =~, !~) and a value');
  const name = unquote(m[1]!, 'label name', source);
  const op = m[2] as MatchOp;
  const value = unquote(m[3]!, 'value', source);
  let re: RegExp | undefined;
  if (op === '=~' || op === '!~') {
    try {
      re = new RegExp(`^(?:${value})$`, 'u');
    } catch (err) {
      throw matcherError(source, `not a regular expression: ${(err as Error).message}`);
    }
  }
  const get = (labels: Readonly<Record<string, string>>) => (Object.hasOwn(labels, name) ? labels[name]! : '');
  const test =
    op === '=' ? (l: Readonly<Record<string, string>>) => get(l) === value :
    op === '!=' ? (l: Readonly<Record<string, string>>) => get(l) !== value :
    op === '=~' ? (l: Readonly<Record<string, string>>) => re!.test(get(l)) :
    (l: Readonly<Record<string, string>>) => !re!.test(get(l));
  return { name, op, value, test };
}

export interface AlertFilter {
  /** True when a firing alert with these labels should start a retrain. */
  matches(labels: Readonly<Record<string, string>>): boolean;
  readonly config: AlertFilterConfig;
}

/** Compiles a filter config; throws CONFIG_INVALID naming a bad matcher. */
export function compileFilter(config: AlertFilterConfig = DEFAULT_FILTERS): AlertFilter {
  if (config.alertnames.length === 0) {
    throw new AegisError('CONFIG_INVALID', 'alerts.filters.alertnames is empty, so no alert could ever start a retrain', {
      hint: 'List the alert names that should start a retrain, e.g. [ModelDrift].',
    });
  }
  const names = new Set(config.alertnames);
  const severities = new Set(config.severities);
  const matchers = config.matchers.map(parseMatcher);
  return {
    config,
    matches(labels) {
      if (!names.has(labels.alertname ?? '')) return false;
      if (severities.size > 0 && !severities.has(labels.severity ?? '')) return false;
      return matchers.every((m) => m.test(labels));
    },
  };
}
