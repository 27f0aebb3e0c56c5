/** Test support: the Kubernetes manifests under deploy/kubernetes, read as `kubectl apply` would see them. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const BACKUP_DIR = join(REPO, 'deploy', 'kubernetes', 'backup');
export const KUSTOMIZATION = join(BACKUP_DIR, 'kustomization.yaml');
export const RESTORE_JOB = join(REPO, 'deploy', 'kubernetes', 'jobs', 'restore-db-job.yaml');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: unknown;
  /** The file it came from. */
  file: string;
}

export interface EnvVar {
  name: string;
  value?: string;
}
export interface Volume {
  name: string;
  emptyDir?: object;
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
}
export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: object[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: object;
}
export interface PodSpec {
  restartPolicy?: string;
  serviceAccountName?: string;
  securityContext?: object;
  containers: Container[];
  volumes?: Volume[];
}

function documents(file: string): K8sObject[] {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Omit<K8sObject, 'file'> | null)
    .filter((o): o is Omit<K8sObject, 'file'> => o !== null)
    .map((o) => ({ ...o, file }));
}

/** The backup kustomization's resources (with its namespace) and the standalone restore Job. */
export function manifestObjects(): K8sObject[] {
  const k = YAML.parse(readFileSync(KUSTOMIZATION, 'utf8')) as { resources: string[]; namespace: string };
  const fromKustomization = k.resources.flatMap((r) => documents(join(BACKUP_DIR, r))).map((o) => ({ ...o, metadata: { ...o.metadata, namespace: k.namespace } }));
  return [...fromKustomization, ...documents(RESTORE_JOB)];
}

export interface AegisContainer {
  owner: K8sObject;
  pod: PodSpec;
  container: Container;
  args: string[];
  restartPolicy: string | undefined;
}

/** The pod template of every CronJob and Job, with its (single) container. */
export function aegisContainers(objects: K8sObject[]): AegisContainer[] {
  return objects.flatMap((o) => {
    const spec = o.spec as { jobTemplate?: { spec: { template: { spec: PodSpec } } }; template?: { spec: PodSpec } } | undefined;
    const pod = o.kind === 'CronJob' ? spec?.jobTemplate?.spec.template.spec : o.kind === 'Job' ? spec?.template?.spec : undefined;
    if (!pod) return [];
    return pod.containers.map((container) => ({ owner: o, pod, container, args: container.args ?? [], restartPolicy: pod.restartPolicy }));
  });
}

/** Kubernetes' $(VAR) expansion in args from the container's env ($$ escapes; unknown names stay as written). */
export function expandArgs(args: string[], env: Record<string, string>): string[] {
  return args.map((a) => a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => (name === undefined ? '$' : (env[name] ?? m))));
}
