'use strict';
const assert = require('assert');
const { parsePath, formatPath, pathContains, pathDepth, PathError } = require('../../dist/lwm2m/path');

describe('LwM2M paths', () => {
  it('parses every level, with or without the leading slash', () => {
    assert.deepStrictEqual(parsePath('/3'), { objectId: 3, instanceId: undefined, resourceId: undefined, resourceInstanceId: undefined });
    assert.deepStrictEqual(parsePath('3303/0/5700'), { objectId: 3303, instanceId: 0, resourceId: 5700, resourceInstanceId: undefined });
    assert.deepStrictEqual(parsePath('/3/0/6/1'), { objectId: 3, instanceId: 0, resourceId: 6, resourceInstanceId: 1 });
    for (const p of ['/3', '/3/0', '/3/0/0', '/3/0/6/1', '/65535/65534/65535/65535']) assert.strictEqual(formatPath(parsePath(p)), p);
  });

  it('rejects bad paths with a PathError that says what is wrong', () => {
    const cases = [
      ['', /non-empty string/], ['/', /"" is not a number/], ['/3/x', /"x" is not a number/], ['/3//0', /"" is not a number/],
      ['/3/0/', /"" is not a number/], ['/1/2/3/4/5', /more than 4 levels/], ['/70000', /exceeds 65535/],
      ['/3/65535', /65535 is reserved/], ['/-1', /"-1" is not a number/], ['/3/0 ', /is not a number/], ['/123456', /"123456" is not a number/],
    ];
    for (const [text, pattern] of cases) assert.throws(() => parsePath(text), (e) => e instanceof PathError && pattern.test(e.message), text);
    assert.throws(() => parsePath(undefined), PathError);
  });

  it('knows depth and containment', () => {
    assert.strictEqual(pathDepth(parsePath('/3/0')), 2);
    assert.ok(pathContains(parsePath('/3'), parsePath('/3/0/1')));
    assert.ok(pathContains(parsePath('/3/0/1'), parsePath('/3/0/1')));
    assert.ok(!pathContains(parsePath('/3/0'), parsePath('/3/1/0')));
    assert.ok(!pathContains(parsePath('/3/0/1'), parsePath('/3/0')));
  });
});
