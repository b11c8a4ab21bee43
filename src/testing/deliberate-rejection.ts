/**
 * A zenith process made to fail on purpose, for the tests of the unhandled-rejection guard: started
 * with this environment, it rejects a promise nobody handles when it receives SIGUSR2 (Node loads
 * the handler before the command; the product's code is unchanged).
 */
export const deliberateRejectionMessage = 'a-deliberate-rejection-for-the-guard-test';

export function deliberateRejectionEnv(): Record<string, string> {
  const handler = `process.on('SIGUSR2',()=>{Promise.reject(Error('${deliberateRejectionMessage}'))})`;
  return {
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=data:text/javascript,${handler}`]
      .filter(Boolean)
      .join(' '),
  };
}
