import { Command, CommanderError } from 'commander';
import { loadConfig, type AegisConfig } from '../config/index.js';
import { logger } from '../log.js';
import { registerDemoCommand } from './demo.js';
import { registerKeysCommands } from './keys.js';
import { registerModelCommands } from './model.js';
import { registerHotSwapCommand, registerServeCommand } from './serve.js';
import { registerLoadCommand } from './load.js';
import { registerUpCommand } from './up.js';
import { registerGatewayCommand } from './gateway.js';
import { registerRolloutCommands } from './rollout.js';
import { registerArchiveCommands } from './archive-commands.js';
import { registerRegistryCommands } from './registry-commands.js';
import { registerOmsCommands } from './oms.js';
import { registerDbCommands } from './db-commands.js';
import { registerTrainCommand } from './train.js';
import { registerDriftCommands } from './drift.js';
import { registerPipelineCommands } from './pipeline.js';
import { EXIT_USAGE, reportError } from './output.js';

export function buildProgram(): Command {
  let config: AegisConfig | undefined;
  // Loaded lazily so `--help` works even with a broken config file.
  const getConfig = () => {
    if (!config) {
      config = loadConfig();
      logger().level = config.logLevel;
    }
    return config;
  };
  const program = new Command('aegis')
    .description('Aegis: sign, verify and safely roll out machine-learning models.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    // Root options (--version) only before the subcommand, so `train --version 0.2` means the model version.
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `
Examples:
  $ aegis keys generate --out-dir keys
  $ aegis model sign my-model/ --key keys/signing-key.pem
  $ aegis model verify my-model/ --public-key keys/signing-key.pub.pem
  verified`,
    );
  registerKeysCommands(program, getConfig);
  const model = registerModelCommands(program, getConfig);
  registerArchiveCommands(model, getConfig);
  registerRegistryCommands(model, getConfig);
  registerServeCommand(program, getConfig);
  registerHotSwapCommand(model, getConfig);
  registerLoadCommand(program, getConfig);
  registerUpCommand(program, getConfig);
  registerGatewayCommand(program, getConfig);
  registerRolloutCommands(program, getConfig);
  registerOmsCommands(program);
  registerDbCommands(program, getConfig);
  registerTrainCommand(program, getConfig);
  registerDriftCommands(program, getConfig);
  registerPipelineCommands(program, getConfig);
  registerDemoCommand(program, getConfig);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  // On every command, not just the root: commander would otherwise call
  // process.exit(1) itself for a subcommand's usage error (README: bad usage is 2).
  const overrideExit = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(overrideExit);
  };
  overrideExit(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or the help/version text)
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    process.exitCode = reportError(err, { json: argv.includes('--json') });
  }
}
