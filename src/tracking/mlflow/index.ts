import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AegisError, fsError, isAegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import type {
  FinalRunStatus,
  LoggedArtifact,
  MetricPoint,
  ModelVersionRef,
  ParamValue,
  RegisterModelVersionInput,
  RunStatus,
  StartRunInput,
  TrackedRun,
  Tracker,
} from '../types.js';
import { MLFLOW_LIMITS, planLogBatches, toWireMetrics, toWireParams, toWireTags, type BatchInput, type LogBatchLimits, type WireKeyValue } from './batch.js';
import { MlflowHttp, mlflowErrorCode, type MlflowHttpOptions } from './http.js';

export { MLFLOW_LIMITS, planLogBatches, type LogBatchBody, type LogBatchLimits } from './batch.js';
export { MlflowHttp, mlflowErrorCode, type MlflowHttpOptions } from './http.js';

const log = childLogger('tracking');

/** Tags Aegis sets on every run (MLflow's own `mlflow.*` ones and Aegis's). */
export const TAGS = Object.freeze({
  user: 'mlflow.user',
  sourceName: 'mlflow.source.name',
  sourceType: 'mlflow.source.type',
  runName: 'mlflow.runName',
  note: 'mlflow.note.content',
  pipelineRunId: 'aegis.pipeline_run_id',
  model: 'aegis.model',
});

const API = '/api/2.0/mlflow';
const ARTIFACTS_API = '/api/2.0/mlflow-artifacts/artifacts';

export interface MlflowTrackerOptions extends MlflowHttpOptions {
  /** Experiment the runs go to; made when missing. */
  experiment: string;
  /** `mlflow.user` when startRun names none; default the OS user. */
  defaultUser?: string;
  limits?: LogBatchLimits;
  /** How long registerModelVersion waits for a PENDING_REGISTRATION version to become READY. */
  registrationTimeoutMs?: number;
  now?: () => number;
}

/** mlflow/protos/service.proto RunInfo (JSON names). */
export interface MlflowRunInfo {
  run_id: string;
  experiment_id: string;
  run_name?: string;
  user_id?: string;
  status: RunStatus;
  start_time?: number;
  end_time?: number;
  artifact_uri: string;
  lifecycle_stage: 'active' | 'deleted';
}
export interface MlflowRun {
  info: MlflowRunInfo;
  data: {
    metrics?: Array<{ key: string; value: number | string; timestamp: number; step: number }>;
    params?: WireKeyValue[];
    tags?: WireKeyValue[];
  };
}
interface MlflowExperiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage: 'active' | 'deleted';
}
/** mlflow/protos/model_registry.proto ModelVersion. */
export interface MlflowModelVersion {
  name: string;
  version: string;
  source: string;
  run_id?: string;
  status?: 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';
  status_message?: string;
  aliases?: string[];
  tags?: WireKeyValue[];
}
export interface MlflowArtifactFile {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

/** Pipeline run ids go into a search filter inside '…': no quotes or backslashes, nothing to escape. */
const SAFE_FILTER_VALUE = /^[A-Za-z0-9._:@+/=-]{1,250}$/;
const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Tracker over the MLflow Tracking REST API 2.0 (no maintained TypeScript
 * client exists): experiments get-or-create, runs with MLflow's standard tags,
 * params/metrics/tags in batches within the server's limits, proxied artifact
 * upload (`mlflow server --serve-artifacts`, the default since MLflow 2.0),
 * model registry versions and aliases.
 *
 * Calls that create something (experiments, runs, registered models, model
 * versions) are not idempotent in MLflow, so they are never blindly resent:
 * each attempt first looks for what an earlier attempt may have made (the run
 * tagged with the pipeline run id, the version with this run and source).
 */
export class MlflowTracker implements Tracker {
  readonly kind = 'mlflow';
  readonly http: MlflowHttp;
  readonly experiment: string;
  private readonly defaultUser: string;
  private readonly limits: LogBatchLimits;
  private readonly registrationTimeoutMs: number;
  private readonly now: () => number;
  private readonly retries: number;
  private readonly minDelayMs: number;
  private experimentId: Promise<string> | undefined;
  private readonly artifactRoots = new Map<string, string>();

  constructor(options: MlflowTrackerOptions) {
    this.http = new MlflowHttp(options);
    this.experiment = options.experiment;
    this.defaultUser = options.defaultUser ?? safeUserName();
    this.limits = options.limits ?? MLFLOW_LIMITS;
    this.registrationTimeoutMs = options.registrationTimeoutMs ?? 300_000;
    this.now = options.now ?? Date.now;
    this.retries = options.retries ?? 4;
    this.minDelayMs = options.minDelayMs ?? 250;
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  /** The experiment's id, made when missing (once per tracker; a failure is not cached). */
  ensureExperiment(): Promise<string> {
    this.experimentId ??= this.getOrCreateExperiment(this.experiment).catch((err: unknown) => {
      this.experimentId = undefined;
      throw err;
    });
    return this.experimentId;
  }

  async getOrCreateExperiment(name: string): Promise<string> {
    return this.createOnce(
      `experiment ${name}`,
      async () => {
        const found = await this.getExperimentByName(name);
        if (found?.lifecycle_stage === 'deleted') {
          throw new AegisError('TRACKING_REJECTED', `MLflow experiment ${JSON.stringify(name)} (id ${found.experiment_id}) is deleted`, {
            hint: `Restore it (\`mlflow experiments restore --experiment-id ${found.experiment_id}\`, or in the UI) or set tracking.experiment (AEGIS_MLFLOW_EXPERIMENT) to another name.`,
            details: { experiment: name, experimentId: found.experiment_id },
          });
        }
        return found?.experiment_id;
      },
      async () => {
        const res = await this.http.call<{ experiment_id: string }>('POST', `${API}/experiments/create`, {
          idempotent: false,
          body: { name, tags: [{ key: 'aegis.created_by', value: 'aegis' }] },
        });
        log.info({ experiment: name, experimentId: res.experiment_id }, 'created MLflow experiment');
        return res.experiment_id;
      },
    );
  }

  async getExperimentByName(name: string): Promise<MlflowExperiment | undefined> {
    try {
      const res = await this.http.call<{ experiment: MlflowExperiment }>('GET', `${API}/experiments/get-by-name`, { idempotent: true, query: { experiment_name: name } });
      return res.experiment;
    } catch (err) {
      if (isAegisError(err, 'TRACKING_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  async startRun(input: StartRunInput): Promise<TrackedRun> {
    if (typeof input.pipelineRunId !== 'string' || !SAFE_FILTER_VALUE.test(input.pipelineRunId)) {
      throw new AegisError('TRACKING_INPUT_INVALID', `pipeline run id ${JSON.stringify(input.pipelineRunId)} cannot be used as an MLflow tag filter`, {
        hint: 'Use 1-250 characters of letters, digits and . _ : @ + / = -',
      });
    }
    const runName = input.runName ?? (input.model ? `${input.model}-${input.pipelineRunId}` : input.pipelineRunId);
    const user = input.user ?? this.defaultUser;
    const standard: Record<string, string> = {
      [TAGS.user]: user,
      [TAGS.sourceName]: input.sourceName ?? 'aegis',
      [TAGS.sourceType]: 'JOB',
      [TAGS.runName]: runName,
      [TAGS.pipelineRunId]: input.pipelineRunId,
      ...(input.model ? { [TAGS.model]: input.model } : {}),
      ...(input.description ? { [TAGS.note]: input.description } : {}),
    };
    const createTags = toWireTags(standard, this.limits);
    const extraTags = input.tags ? toWireTags(input.tags, this.limits) : [];
    const experimentId = await this.ensureExperiment();
    let resumed = true;
    const run = await this.createOnce(
      `run for pipeline run ${input.pipelineRunId}`,
      () => this.findRunByPipelineId(input.pipelineRunId, experimentId),
      async () => {
        resumed = false;
        const res = await this.http.call<{ run: MlflowRun }>('POST', `${API}/runs/create`, {
          idempotent: false,
          body: { experiment_id: experimentId, user_id: user, run_name: runName, start_time: input.startTime ?? this.now(), tags: createTags },
        });
        return res.run.info;
      },
    );
    this.artifactRoots.set(run.run_id, run.artifact_uri);
    if (extraTags.length) await this.logBatch(run.run_id, { tags: extraTags });
    log.info({ runId: run.run_id, pipelineRunId: input.pipelineRunId, resumed }, resumed ? 'resumed MLflow run' : 'started MLflow run');
    return { runId: run.run_id, resumed, status: run.status, url: this.runUrl(experimentId, run.run_id) };
  }

  /** The oldest active run of the experiment tagged with this pipeline run id. */
  async findRunByPipelineId(pipelineRunId: string, experimentId?: string): Promise<MlflowRunInfo | undefined> {
    if (!SAFE_FILTER_VALUE.test(pipelineRunId)) return undefined;
    const res = await this.http.call<{ runs?: MlflowRun[] }>('POST', `${API}/runs/search`, {
      idempotent: true,
      body: {
        experiment_ids: [experimentId ?? (await this.ensureExperiment())],
        filter: `tags.\`${TAGS.pipelineRunId}\` = '${pipelineRunId}'`,
        run_view_type: 'ACTIVE_ONLY',
        order_by: ['attributes.start_time ASC'],
        max_results: 2,
      },
    });
    const runs = res.runs ?? [];
    if (runs.length > 1) log.warn({ pipelineRunId, runIds: runs.map((r) => r.info.run_id) }, 'more than one MLflow run carries this pipeline run id; using the oldest');
    return runs[0]?.info;
  }

  async getRun(runId: string): Promise<MlflowRun> {
    const res = await this.http.call<{ run: MlflowRun }>('GET', `${API}/runs/get`, { idempotent: true, query: { run_id: runId } });
    this.artifactRoots.set(runId, res.run.info.artifact_uri);
    return res.run;
  }

  async logParams(runId: string, params: Readonly<Record<string, ParamValue>>): Promise<void> {
    await this.logBatch(runId, { params: toWireParams(params, this.limits) });
  }

  async logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    await this.logBatch(runId, { metrics: toWireMetrics(metrics, this.now(), this.limits) });
  }

  async setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.logBatch(runId, { tags: toWireTags(tags, this.limits) });
  }

  /**
   * Sends entities in as many runs/log-batch requests as the limits need, one
   * after another (MLflow keeps the order within a kind). Each request is safe to
   * resend: params and tags are idempotent, and a metric point already stored
   * (same key, value, timestamp, step) is not stored again.
   */
  async logBatch(runId: string, input: BatchInput): Promise<number> {
    const bodies = planLogBatches(runId, input, this.limits);
    for (const body of bodies) {
      await this.http.call('POST', `${API}/runs/log-batch`, { idempotent: true, body });
    }
    return bodies.length;
  }

  async finish(runId: string, status: FinalRunStatus, endTime?: number): Promise<void> {
    if (status !== 'FINISHED' && status !== 'FAILED' && status !== 'KILLED') {
      throw new AegisError('TRACKING_INPUT_INVALID', `run status ${JSON.stringify(status)} is not a final status`, { hint: 'Use FINISHED, FAILED or KILLED.' });
    }
    await this.http.call('POST', `${API}/runs/update`, { idempotent: true, body: { run_id: runId, status, end_time: endTime ?? this.now() } });
  }

  async logArtifact(runId: string, localPath: string, artifactDir?: string): Promise<LoggedArtifact> {
    let size: number;
    try {
      const s = await stat(localPath);
      if (!s.isFile()) throw new AegisError('FILE_UNREADABLE', `artifact ${localPath} is not a regular file`, { hint: 'Log files one by one (an archive for a folder).', details: { path: localPath } });
      size = s.size;
    } catch (err) {
      if (err instanceof AegisError) throw err;
      throw fsError(err, localPath, 'artifact');
    }
    const dir = artifactDir === undefined || artifactDir === '' ? undefined : checkArtifactPath(artifactDir);
    const path = dir ? `${dir}/${basename(localPath)}` : basename(localPath);
    const root = await this.artifactRoot(runId);
    await this.http.upload(this.artifactEndpoint(root, path), localPath, size);
    // The proxy answers 200 once the bytes are stored; the listing confirms what it stored.
    const listed = (await this.listArtifacts(runId, dir)).find((f) => f.path === path);
    if (!listed || (listed.file_size !== undefined && Number(listed.file_size) !== size)) {
      throw new AegisError('TRACKING_REJECTED', `MLflow stored ${path} of run ${runId} with ${listed ? `${listed.file_size} bytes` : 'no file'}, not ${size} bytes`, {
        hint: 'Retry the step; if it persists, check the artifact store behind the MLflow server (disk space, permissions).',
        details: { runId, path, expected: size, stored: listed?.file_size },
      });
    }
    log.debug({ runId, path, bytes: size }, 'logged MLflow artifact');
    return { path, uri: `${root}/${path}`, bytes: size };
  }

  /** Files directly under `dir` (default the root) of the run's artifacts, paths relative to the root. */
  async listArtifacts(runId: string, dir?: string): Promise<MlflowArtifactFile[]> {
    const files: MlflowArtifactFile[] = [];
    let pageToken: string | undefined;
    do {
      const res = await this.http.call<{ files?: MlflowArtifactFile[]; next_page_token?: string }>('GET', `${API}/artifacts/list`, {
        idempotent: true,
        query: { run_id: runId, path: dir ? checkArtifactPath(dir) : undefined, page_token: pageToken },
      });
      files.push(...(res.files ?? []));
      pageToken = res.next_page_token || undefined;
    } while (pageToken);
    return files;
  }

  /** Downloads one artifact of the run into `dest`; returns its size. */
  async downloadArtifact(runId: string, artifactPath: string, dest: string): Promise<number> {
    const root = await this.artifactRoot(runId);
    return this.http.download(this.artifactEndpoint(root, checkArtifactPath(artifactPath)), dest);
  }

  async registerModelVersion(input: RegisterModelVersionInput): Promise<ModelVersionRef> {
    if (!RUN_ID.test(input.runId)) throw new AegisError('TRACKING_INPUT_INVALID', `${JSON.stringify(input.runId)} is not an MLflow run id`, { hint: 'Pass the runId startRun returned.' });
    if (typeof input.name !== 'string' || input.name.trim() === '') throw new AegisError('TRACKING_INPUT_INVALID', 'registered model name is empty', { hint: 'Name the model.' });
    const tags = input.tags ? toWireTags(input.tags, this.limits) : [];
    const root = await this.artifactRoot(input.runId);
    const source = `${root}/${checkArtifactPath(input.artifactDir)}`;
    await this.ensureRegisteredModel(input.name);
    let version = await this.createOnce(
      `version of model ${input.name} from run ${input.runId}`,
      () => this.findModelVersion(input.name, input.runId, source),
      async () => {
        const res = await this.http.call<{ model_version: MlflowModelVersion }>('POST', `${API}/model-versions/create`, {
          idempotent: false,
          body: { name: input.name, source, run_id: input.runId, tags, ...(input.description ? { description: input.description } : {}) },
        });
        log.info({ model: input.name, version: res.model_version.version, runId: input.runId }, 'registered MLflow model version');
        return res.model_version;
      },
    );
    version = await this.waitReady(version);
    return { name: version.name, version: version.version, source: version.source, runId: input.runId, url: `${this.baseUrl}/#/models/${encodeURIComponent(version.name)}/versions/${version.version}` };
  }

  async ensureRegisteredModel(name: string): Promise<void> {
    await this.createOnce(
      `registered model ${name}`,
      async () => {
        try {
          const res = await this.http.call<{ registered_model: { name: string } }>('GET', `${API}/registered-models/get`, { idempotent: true, query: { name } });
          return res.registered_model.name;
        } catch (err) {
          if (isAegisError(err, 'TRACKING_NOT_FOUND')) return undefined;
          throw err;
        }
      },
      async () => {
        const res = await this.http.call<{ registered_model: { name: string } }>('POST', `${API}/registered-models/create`, {
          idempotent: false,
          body: { name, tags: [{ key: 'aegis.created_by', value: 'aegis' }] },
        });
        return res.registered_model.name;
      },
    );
  }

  /** A version of `name` made from this run with this source, when one exists. */
  async findModelVersion(name: string, runId: string, source: string): Promise<MlflowModelVersion | undefined> {
    let pageToken: string | undefined;
    do {
      const res = await this.http.call<{ model_versions?: MlflowModelVersion[]; next_page_token?: string }>('GET', `${API}/model-versions/search`, {
        idempotent: true,
        query: { filter: `run_id='${runId}'`, max_results: 1000, page_token: pageToken },
      });
      const hit = (res.model_versions ?? []).find((v) => v.name === name && v.source === source);
      if (hit) return hit;
      pageToken = res.next_page_token || undefined;
    } while (pageToken);
    return undefined;
  }

  async setAlias(name: string, alias: string, version: string): Promise<void> {
    await this.http.call('POST', `${API}/registered-models/alias`, { idempotent: true, body: { name, alias, version: String(version) } });
  }

  async getModelVersionByAlias(name: string, alias: string): Promise<MlflowModelVersion> {
    const res = await this.http.call<{ model_version: MlflowModelVersion }>('GET', `${API}/registered-models/alias`, { idempotent: true, query: { name, alias } });
    return res.model_version;
  }

  runUrl(experimentId: string, runId: string): string {
    return `${this.baseUrl}/#/experiments/${experimentId}/runs/${runId}`;
  }

  private async waitReady(version: MlflowModelVersion): Promise<MlflowModelVersion> {
    const deadline = this.now() + this.registrationTimeoutMs;
    let v = version;
    while (v.status === 'PENDING_REGISTRATION') {
      if (this.now() > deadline) {
        throw new AegisError('TRACKING_UNREACHABLE', `MLflow model ${v.name} version ${v.version} is still PENDING_REGISTRATION after ${this.registrationTimeoutMs} ms`, {
          hint: 'The registry is still copying the files; check the version in the MLflow UI and retry the step.',
          details: { model: v.name, version: v.version },
        });
      }
      await sleep(1000);
      const res = await this.http.call<{ model_version: MlflowModelVersion }>('GET', `${API}/model-versions/get`, { idempotent: true, query: { name: v.name, version: v.version } });
      v = res.model_version;
    }
    if (v.status === 'FAILED_REGISTRATION') {
      throw new AegisError('TRACKING_REJECTED', `MLflow could not register model ${v.name} version ${v.version}: ${v.status_message ?? 'no reason given'}`, {
        hint: 'Check that the run has the artifacts under the registered folder, then retry the step.',
        details: { model: v.name, version: v.version },
      });
    }
    return v;
  }

  private async artifactRoot(runId: string): Promise<string> {
    const root = this.artifactRoots.get(runId) ?? (await this.getRun(runId)).info.artifact_uri;
    if (!root.startsWith('mlflow-artifacts:')) {
      throw new AegisError('TRACKING_ARTIFACTS_UNSUPPORTED', `run ${runId} keeps its artifacts at ${root}, which the MLflow server does not proxy`, {
        hint:
          'Aegis uploads artifacts through the tracking server. Start it with artifact serving (`mlflow server --serve-artifacts`, the default since MLflow 2.0, ' +
          '--artifacts-destination s3://…), and use an experiment made after that (its artifact_location starts with mlflow-artifacts:).',
        details: { runId, artifactUri: root },
      });
    }
    return root.replace(/\/+$/, '');
  }

  /**
   * mlflow-artifacts:/<path> and mlflow-artifacts://<host:port>/<path> → the proxy's
   * PUT/GET /api/2.0/mlflow-artifacts/artifacts/<path>/<artifact path>. A host in the
   * URI is the tracking server's own address as the server knows it; requests go to
   * the configured tracking URI (the address this client can reach).
   */
  private artifactEndpoint(root: string, artifactPath: string): string {
    const rest = root.slice('mlflow-artifacts:'.length);
    const path = rest.startsWith('//') ? rest.slice(2).replace(/^[^/]*/, '') : rest;
    const segments = `${path}/${artifactPath}`.split('/').filter((s) => s !== '');
    return `${ARTIFACTS_API}/${segments.map(encodeURIComponent).join('/')}`;
  }

  /**
   * Makes something MLflow creates with a non-idempotent call at most once:
   * each attempt first looks it up (an earlier attempt's answer may have been
   * lost), then creates it. "Already exists" (a concurrent creator) and lost
   * answers lead to another lookup, up to `retries` more times.
   */
  private async createOnce<T>(what: string, lookup: () => Promise<T | undefined>, create: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      const found = await lookup();
      if (found !== undefined) return found;
      try {
        return await create();
      } catch (err) {
        const again = mlflowErrorCode(err) === 'RESOURCE_ALREADY_EXISTS' || isAegisError(err, 'TRACKING_UNREACHABLE');
        if (!again || n >= this.retries) throw err;
        log.warn({ what, attempt: n + 1, reason: (err as Error).message }, 'MLflow create failed; looking it up before trying again');
        await sleep(Math.random() * Math.min(8_000, this.minDelayMs * 2 ** n));
      }
    }
  }
}

/** A relative `/`-separated artifact path without `.`/`..`/empty segments or backslashes. */
export function checkArtifactPath(path: string): string {
  const trimmed = typeof path === 'string' ? path.replace(/\/+$/, '') : '';
  const segments = trimmed.split('/');
  if (trimmed === '' || trimmed.startsWith('/') || trimmed.includes('\\') || segments.some((s) => s === '' || s === '.' || s === '..') || [...trimmed].some((c) => c.charCodeAt(0) < 0x20)) {
    throw new AegisError('TRACKING_INPUT_INVALID', `artifact path ${JSON.stringify(path)} is not a relative path inside the run's artifacts`, {
      hint: 'Use a relative path such as `model` or `model/bundle`: no leading `/`, no `..`, no empty segments.',
    });
  }
  return trimmed;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'aegis';
  }
}
