/**
 * runc-compatible logging. With --log the lines go to that file (engines
 * read the last `level:"error"` JSON line of it when a command fails);
 * without it they go to stderr. The container's stdio is create's stdio, so
 * nothing but errors is ever printed there unasked.
 */
import fs from 'node:fs';
import { writeStderr } from './bench/stdio.js';

export type LogFormat = 'text' | 'json';
export type Level = 'debug' | 'info' | 'warning' | 'error';

interface LogConfig {
  file?: string;
  format: LogFormat;
  debug: boolean;
}

const config: LogConfig = { format: 'text', debug: false };

export function configureLog(c: Partial<LogConfig>): void {
  Object.assign(config, c);
}

function line(level: Level, msg: string): string {
  const time = new Date().toISOString();
  if (config.format === 'json') return JSON.stringify({ level, msg, time }) + '\n';
  // logrus' text format, as runc writes it.
  return `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
}

function write(level: Level, msg: string): void {
  if (config.file) {
    try {
      fs.appendFileSync(config.file, line(level, msg));
      return;
    } catch {
      // An unwritable log file must not hide the message itself.
    }
  }
  writeStderr(config.format === 'json' ? line(level, msg) : `tsrun: ${level}: ${msg}\n`);
}

export const log = {
  debug(msg: string): void {
    if (config.debug) write('debug', msg);
  },
  info(msg: string): void {
    if (config.debug) write('info', msg);
  },
  warn(msg: string): void {
    write('warning', msg);
  },
  /** The final error of a failing command: to the log file as runc does, and always to stderr. */
  fatal(msg: string): void {
    if (config.file) {
      try {
        fs.appendFileSync(config.file, line('error', msg));
      } catch {
        /* stderr below still carries it */
      }
    }
    writeStderr(`tsrun: ${msg}\n`);
  },
};
