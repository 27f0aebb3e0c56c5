/**
 * scanModel: which files make up a model (the OMS `files` serialization rules),
 * and the path helpers it relies on.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAegisError, type AegisError, type ErrorCode } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';
import { DEFAULT_GIT_IGNORES, assertSafeResourceName, comparePaths, isIgnored, normalizeIgnorePaths } from './paths.js';
import { scanModel, type ModelScan } from './scan.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  tmp = await tempDir('aegis-scan-');
});
afterEach(async () => tmp.cleanup());

/** Awaits `p` and returns its AegisError, failing the test if it resolves or throws anything else. */
async function failure(p: Promise<unknown>, code: ErrorCode): Promise<AegisError> {
  const err = await p.then(
    (v) => ({ resolved: v }),
    (e: unknown) => e,
  );
  expect(isAegisError(err), `expected AegisError ${code}, got ${JSON.stringify(err) ?? String(err)}`).toBe(true);
  expect((err as AegisError).code).toBe(code);
  return err as AegisError;
}

const names = (s: ModelScan) => s.files.map((f) => f.name);

async function model(files: Record<string, string | number | Buffer>, dir = 'model'): Promise<string> {
  return writeModel(join(tmp.path, dir), files);
}

describe('scanModel: ordering', () => {
  it('sorts resource names by path component, not as plain strings', async () => {
    const root = await model({ 'a-b': 'x', 'a/b': 'x', 'a.b': 'x', 'a/c/d': 'x', ab: 'x', B: 'x', b: 'x', a0: 'x' });
    const s = await scanModel(root);
    // "a" < "a-b" as a component, so everything under a/ comes first, though "-" and "." sort before "/" as characters.
    expect(names(s)).toEqual(['B', 'a/b', 'a/c/d', 'a-b', 'a.b', 'a0', 'ab', 'b']);
    expect([...names(s)].sort()).not.toEqual(names(s)); // the plain sort would differ: the test can tell them apart
    expect([...names(s)].sort(comparePaths)).toEqual(names(s));
  });

  it('orders by code point, not by UTF-16 code unit', async () => {
    // U+FF5A (fullwidth z) < U+1F600 (emoji) as code points, but the emoji's surrogate 0xD83D < 0xFF5A.
    const root = await model({ '\u{1F600}.bin': 'x', '\uFF5A.bin': 'x', 'z.bin': 'x' });
    const s = await scanModel(root);
    expect(names(s)).toEqual(['z.bin', '\uFF5A.bin', '\u{1F600}.bin']);
  });

  it('records sizes, absolute paths and the byte total, including empty files', async () => {
    const root = await model({ 'w/a.bin': 1000, 'empty.bin': '', 'c.txt': 'hello' });
    const s = await scanModel(root);
    expect(s.singleFile).toBe(false);
    expect(s.root).toBe(root);
    expect(s.files).toEqual([
      { name: 'c.txt', path: join(root, 'c.txt'), size: 5 },
      { name: 'empty.bin', path: join(root, 'empty.bin'), size: 0 },
      { name: 'w/a.bin', path: join(root, 'w', 'a.bin'), size: 1000 },
    ]);
    expect(s.totalBytes).toBe(1005);
  });

  it('includes dotfiles and hidden directories other than the git paths', async () => {
    const root = await model({ '.env': 'x', '.hidden/w.bin': 'x', 'm.bin': 'x' });
    expect(names(await scanModel(root))).toEqual(['.env', '.hidden/w.bin', 'm.bin']);
  });
});

describe('scanModel: git paths and ignore paths', () => {
  const gitModel = {
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/objects/ab/cdef': 'x',
    '.gitattributes': '*.bin filter=lfs\n',
    '.github/workflows/ci.yml': 'on: push\n',
    '.gitignore': '*.tmp\n',
    '.gitmodules': '',
    '.github-notes': 'x',
    'sub/.gitignore': 'x',
    'sub/.git/config': 'x',
    'weights.bin': 10,
  };

  it('leaves out .git, .gitattributes, .github and .gitignore at the model root by default', async () => {
    const s = await scanModel(await model(gitModel));
    // Only the root-level entries are ignored (as the reference tools do); look-alikes and nested copies are kept.
    expect(names(s)).toEqual(['.github-notes', '.gitmodules', 'sub/.git/config', 'sub/.gitignore', 'weights.bin']);
    expect(s.ignorePaths).toEqual([...DEFAULT_GIT_IGNORES]);
  });

  it('keeps the git paths with ignoreGitPaths: false', async () => {
    const s = await scanModel(await model(gitModel), { ignoreGitPaths: false });
    expect(names(s)).toContain('.git/HEAD');
    expect(names(s)).toContain('.git/objects/ab/cdef');
    expect(names(s)).toContain('.gitattributes');
    expect(names(s)).toContain('.github/workflows/ci.yml');
    expect(names(s)).toContain('.gitignore');
    expect(s.files).toHaveLength(Object.keys(gitModel).length);
    expect(s.ignorePaths).toEqual([]);
  });

  it('applies relative ignore paths (files and directories) from the model root', async () => {
    const root = await model({ 'a.bin': 1, 'skip.bin': 1, 'logs/1.txt': 'x', 'logs/2/3.txt': 'x', 'logsx/keep.txt': 'x', 'sub/skip.bin': 1 });
    const s = await scanModel(root, { ignorePaths: ['skip.bin', 'logs/', 'does-not-exist'] });
    // "skip.bin" is the root file only; "logs" does not swallow "logsx".
    expect(names(s)).toEqual(['a.bin', 'logsx/keep.txt', 'sub/skip.bin']);
    expect(s.ignorePaths).toEqual([...DEFAULT_GIT_IGNORES, 'skip.bin', 'logs', 'does-not-exist']);
  });

  it('applies absolute ignore paths inside the root and drops those outside it', async () => {
    const root = await model({ 'a.bin': 1, 'sub/b.bin': 1, 'sub/c.bin': 1 });
    await writeFile(join(tmp.path, 'outside.bin'), 'x');
    const s = await scanModel(root, {
      ignorePaths: [join(root, 'sub', 'b.bin'), join(tmp.path, 'outside.bin'), '../outside.bin', root],
    });
    expect(names(s)).toEqual(['a.bin', 'sub/c.bin']);
    expect(s.ignorePaths).toEqual([...DEFAULT_GIT_IGNORES, 'sub/b.bin']);
  });

  it('refuses an empty ignore path', async () => {
    const root = await model({ 'a.bin': 1 });
    await failure(scanModel(root, { ignorePaths: ['  '] }), 'IGNORE_PATH_INVALID');
  });

  it('does not apply ignore paths to a single-file model', async () => {
    const root = await model({ 'w.bin': 3 });
    const s = await scanModel(join(root, 'w.bin'), { ignorePaths: ['w.bin'] });
    expect(names(s)).toEqual(['w.bin']);
    expect(s.ignorePaths).toEqual([]);
  });

  it('refuses a model whose every file is ignored', async () => {
    const root = await model({ 'a.bin': 1, '.gitignore': 'x' });
    const err = await failure(scanModel(root, { ignorePaths: ['a.bin'] }), 'MODEL_EMPTY');
    expect(err.message).toContain(root);
  });
});

describe('scanModel: symlinks', () => {
  it('refuses a symlink by default, naming it', async () => {
    const root = await model({ 'a.bin': 3 });
    await symlink('a.bin', join(root, 'link.bin'));
    const err = await failure(scanModel(root), 'SYMLINK_REJECTED');
    expect(err.message).toContain('link.bin');
  });

  it('refuses a symlink inside an ignored directory only if it is not ignored', async () => {
    const root = await model({ 'a.bin': 3, 'cache/x': 'x' });
    await symlink('../a.bin', join(root, 'cache', 'link'));
    expect(names(await scanModel(root, { ignorePaths: ['cache'] }))).toEqual(['a.bin']);
    await failure(scanModel(root), 'SYMLINK_REJECTED');
  });

  it('follows a symlink to a file inside the root with allowSymlinks, under the link name', async () => {
    const root = await model({ 'a.bin': 3, 'sub/b.bin': 7 });
    await symlink('sub/b.bin', join(root, 'alias.bin'));
    const s = await scanModel(root, { allowSymlinks: true });
    expect(names(s)).toEqual(['a.bin', 'alias.bin', 'sub/b.bin']);
    expect(s.files.find((f) => f.name === 'alias.bin')).toEqual({ name: 'alias.bin', path: join(root, 'alias.bin'), size: 7 });
    expect(s.totalBytes).toBe(17);
  });

  it('follows a symlink to a directory inside the root with allowSymlinks', async () => {
    const root = await model({ 'sub/b.bin': 7, 'sub/deep/c.bin': 2 });
    await symlink('sub', join(root, 'linked'));
    const s = await scanModel(root, { allowSymlinks: true });
    expect(names(s)).toEqual(['linked/b.bin', 'linked/deep/c.bin', 'sub/b.bin', 'sub/deep/c.bin']);
  });

  it('refuses a symlink escaping the root even when symlinks are allowed', async () => {
    const root = await model({ 'a.bin': 3 });
    await writeFile(join(tmp.path, 'secret.txt'), 'secret');
    await symlink('../secret.txt', join(root, 'leak.txt'));
    const err = await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_ESCAPES_ROOT');
    expect(err.message).toContain('leak.txt');
  });

  it('refuses a symlink to a sibling directory whose name starts with the root name', async () => {
    const root = await model({ 'a.bin': 3 });
    await writeModel(join(tmp.path, 'model-evil'), { 'x.bin': 'evil' });
    await symlink(join(tmp.path, 'model-evil', 'x.bin'), join(root, 'x.bin'));
    await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_ESCAPES_ROOT');
  });

  it('refuses a symlink to an absolute path outside the root', async () => {
    const root = await model({ 'a.bin': 3 });
    await symlink('/etc', join(root, 'etc'));
    await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_ESCAPES_ROOT');
  });

  it('refuses a symlink to the root itself (directory loop)', async () => {
    const root = await model({ 'a.bin': 3 });
    await symlink('.', join(root, 'loop'));
    const err = await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_LOOP');
    expect(err.message).toContain('loop');
  });

  it('refuses a symlink to an ancestor directory (directory loop)', async () => {
    const root = await model({ 'a/b/c.bin': 3 });
    await symlink('..', join(root, 'a', 'b', 'up'));
    const err = await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_LOOP');
    expect(err.message).toContain('a/b/up');
  });

  it('refuses a cycle of links that never reaches a file', async () => {
    const root = await model({ 'a.bin': 3 });
    await symlink('l2', join(root, 'l1'));
    await symlink('l1', join(root, 'l2'));
    const err = await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_LOOP');
    expect(err.message).toContain('l1');
  });

  it('refuses a broken symlink when symlinks are allowed', async () => {
    const root = await model({ 'a.bin': 3 });
    await symlink('gone.bin', join(root, 'dangling.bin'));
    const err = await failure(scanModel(root, { allowSymlinks: true }), 'SYMLINK_BROKEN');
    expect(err.message).toContain('dangling.bin');
    await failure(scanModel(root), 'SYMLINK_REJECTED');
  });

  it('treats a symlinked model root like any symlink', async () => {
    const root = await model({ 'a.bin': 3 });
    const link = join(tmp.path, 'root-link');
    await symlink(root, link);
    await failure(scanModel(link), 'SYMLINK_REJECTED');
    const s = await scanModel(link, { allowSymlinks: true });
    expect(names(s)).toEqual(['a.bin']);
    const fileLink = join(tmp.path, 'file-link');
    await symlink(join(root, 'a.bin'), fileLink);
    expect(await scanModel(fileLink, { allowSymlinks: true })).toMatchObject({ singleFile: true, files: [{ name: 'file-link', size: 3 }] });
    const broken = join(tmp.path, 'broken-link');
    await symlink(join(tmp.path, 'nothing'), broken);
    await failure(scanModel(broken, { allowSymlinks: true }), 'SYMLINK_BROKEN');
  });
});

describe('scanModel: special files and edge cases', () => {
  it('refuses a FIFO in the model, naming it', async () => {
    const root = await model({ 'a.bin': 3 });
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const err = await failure(scanModel(root), 'UNSUPPORTED_FILE_TYPE');
    expect(err.message).toContain('pipe');
  });

  it('skips a FIFO under an ignore path', async () => {
    const root = await model({ 'a.bin': 3 });
    await mkdir(join(root, 'run'));
    execFileSync('mkfifo', [join(root, 'run', 'pipe')]);
    expect(names(await scanModel(root, { ignorePaths: ['run'] }))).toEqual(['a.bin']);
  });

  it('refuses a FIFO as the model path, and a symlink to a FIFO', async () => {
    execFileSync('mkfifo', [join(tmp.path, 'pipe')]);
    await failure(scanModel(join(tmp.path, 'pipe')), 'UNSUPPORTED_FILE_TYPE');
    const root = await model({ 'a.bin': 3 });
    execFileSync('mkfifo', [join(root, 'real-pipe')]);
    await symlink('real-pipe', join(root, 'pipe-link'));
    // The FIFO itself is ignored, so only the link to it can cause the refusal.
    const err = await failure(scanModel(root, { allowSymlinks: true, ignorePaths: ['real-pipe'] }), 'UNSUPPORTED_FILE_TYPE');
    expect(err.message).toContain('pipe-link');
  });

  it('refuses an empty directory, and one holding only empty directories', async () => {
    const empty = join(tmp.path, 'empty');
    await mkdir(empty);
    await failure(scanModel(empty), 'MODEL_EMPTY');
    await mkdir(join(empty, 'a', 'b'), { recursive: true });
    await failure(scanModel(empty), 'MODEL_EMPTY');
  });

  it('refuses a model holding only git paths', async () => {
    const root = await model({ '.git/HEAD': 'x', '.gitignore': 'x' });
    await failure(scanModel(root), 'MODEL_EMPTY');
    expect(names(await scanModel(root, { ignoreGitPaths: false }))).toEqual(['.git/HEAD', '.gitignore']);
  });

  it('reports a missing model path as MODEL_NOT_FOUND', async () => {
    const missing = join(tmp.path, 'nope');
    const err = await failure(scanModel(missing), 'MODEL_NOT_FOUND');
    expect(err.message).toContain(missing);
  });

  it('treats a file as a single-file model named after the file', async () => {
    const root = await model({ 'dir/model.safetensors': 1234 });
    const path = join(root, 'dir', 'model.safetensors');
    const s = await scanModel(path);
    expect(s).toEqual({
      root: path,
      singleFile: true,
      files: [{ name: 'model.safetensors', path, size: 1234 }],
      ignorePaths: [],
      totalBytes: 1234,
    });
  });

  it('accepts an empty single-file model', async () => {
    const root = await model({ 'empty.bin': '' });
    const s = await scanModel(join(root, 'empty.bin'));
    expect(s.files).toEqual([{ name: 'empty.bin', path: join(root, 'empty.bin'), size: 0 }]);
  });
});

describe('assertSafeResourceName', () => {
  const code = (name: string): string | undefined => {
    try {
      assertSafeResourceName(name);
      return undefined;
    } catch (err) {
      return isAegisError(err) ? err.code : `not an AegisError: ${String(err)}`;
    }
  };

  it.each([
    'weights.bin',
    'a/b/c.bin',
    '.', // legacy single-file form
    '.hidden',
    '..foo',
    'foo..',
    'a/...',
    'a/..b/c',
    'name with spaces/ünïcödé 词表.json',
    'shard:0:10',
  ])('accepts %j', (name) => {
    expect(code(name)).toBeUndefined();
  });

  it.each([
    ['', 'empty name'],
    ['/etc/passwd', 'absolute path'],
    ['/', 'absolute path'],
    ['C:/Windows/win.ini', 'absolute path'],
    ['c:model.bin', 'absolute path'],
    ['a\\..\\b', 'backslash'],
    ['..\\x', 'backslash'],
    ['a\0b', 'NUL byte'],
    ['..', '".."'],
    ['../secret', '".."'],
    ['a/../../secret', '".."'],
    ['a/..', '".."'],
    ['a//b', 'empty or "." path segment'],
    ['a/', 'empty or "." path segment'],
    ['./a', 'empty or "." path segment'],
    ['a/./b', 'empty or "." path segment'],
  ])('refuses %j (%s)', (name, why) => {
    let err: unknown;
    try {
      assertSafeResourceName(name);
    } catch (e) {
      err = e;
    }
    expect(isAegisError(err, 'RESOURCE_NAME_UNSAFE')).toBe(true);
    expect((err as AegisError).message).toContain(why);
    expect((err as AegisError).details).toEqual({ name });
  });
});

describe('normalizeIgnorePaths', () => {
  const root = '/models/m';

  it('keeps relative paths as POSIX paths from the root', () => {
    expect(normalizeIgnorePaths(root, ['a.bin', 'dir/', './x/y', 'x/../z'])).toEqual(['a.bin', 'dir', 'x/y', 'z']);
  });

  it('converts absolute paths inside the root', () => {
    expect(normalizeIgnorePaths(root, ['/models/m/sub/f.bin', '/models/m/dir/'])).toEqual(['sub/f.bin', 'dir']);
  });

  it('drops paths outside the root and the root itself', () => {
    expect(normalizeIgnorePaths(root, ['/models/other', '/models/m-evil/x', '../m2/x', '..', '/', '.', '/models/m'])).toEqual([]);
  });

  it('keeps names inside the root that merely start with two dots', () => {
    expect(normalizeIgnorePaths(root, ['..cache', '/models/m/..hidden/x'])).toEqual(['..cache', '..hidden/x']);
  });

  it('removes duplicates', () => {
    expect(normalizeIgnorePaths(root, ['a', './a', '/models/m/a', 'a/'])).toEqual(['a']);
  });

  it.each(['', ' ', '\t'])('refuses the empty path %j', (p) => {
    let err: unknown;
    try {
      normalizeIgnorePaths(root, ['ok', p]);
    } catch (e) {
      err = e;
    }
    expect(isAegisError(err, 'IGNORE_PATH_INVALID')).toBe(true);
  });
});

describe('isIgnored and comparePaths', () => {
  it('matches an ignore path and everything below it, on component boundaries', () => {
    expect(isIgnored('logs', ['logs'])).toBe(true);
    expect(isIgnored('logs/a/b', ['logs'])).toBe(true);
    expect(isIgnored('logsx', ['logs'])).toBe(false);
    expect(isIgnored('logs.txt', ['logs'])).toBe(false);
    expect(isIgnored('sub/logs', ['logs'])).toBe(false);
    expect(isIgnored('a', [])).toBe(false);
  });

  it('compares component by component, shorter prefix first', () => {
    expect(comparePaths('a/b', 'a-b')).toBeLessThan(0);
    expect(comparePaths('a-b', 'a/b')).toBeGreaterThan(0);
    expect(comparePaths('a', 'a/b')).toBeLessThan(0);
    expect(comparePaths('a/b', 'a/b')).toBe(0);
    expect(comparePaths('B', 'a')).toBeLessThan(0);
    expect(comparePaths('\uFF5A', '\u{1F600}')).toBeLessThan(0);
    expect(comparePaths('ab', 'a')).toBeGreaterThan(0);
  });
});
