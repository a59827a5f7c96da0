import type { IWhoAmI } from '../src/api/types';
import { WhoAmIModel } from '../src/api/whoami';

const alice: IWhoAmI = { username: 'alice', email: 'a@example.com', role: 'user', domain: 'default', access_key: 'AK' };

describe('the polled whoami model', () => {
  it('fires only when the answer changes, and keeps the last answer through a failure', async () => {
    const answers: (IWhoAmI | Error)[] = [alice, { ...alice }, { ...alice, role: 'admin' }, new Error('down')];
    const model = new WhoAmIModel({
      fetch: async () => {
        const next = answers.shift()!;
        if (next instanceof Error) {
          throw next;
        }
        return next;
      },
      errorText: e => (e as Error).message
    });
    let fired = 0;
    model.changed.connect(() => (fired += 1));
    await model.refresh();
    await model.ready;
    expect(model.who?.role).toBe('user');
    await model.refresh();
    expect(fired).toBe(1);
    await model.refresh();
    expect(model.who?.role).toBe('admin');
    expect(fired).toBe(2);
    await model.refresh();
    expect(model.error).toBe('down');
    expect(model.who?.role).toBe('admin');
    expect(fired).toBe(3);
    model.dispose();
  });

  it('asks again every interval until disposed', async () => {
    jest.useFakeTimers();
    let calls = 0;
    const model = new WhoAmIModel({
      fetch: async () => {
        calls += 1;
        return alice;
      },
      errorText: String,
      interval: 1000
    });
    model.start();
    model.start();
    expect(calls).toBe(1);
    jest.advanceTimersByTime(3000);
    expect(calls).toBe(4);
    model.dispose();
    jest.advanceTimersByTime(3000);
    expect(calls).toBe(4);
    jest.useRealTimers();
  });
});
