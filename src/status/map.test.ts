import { describe, expect, it } from 'vitest';
import { area, clipRing, landPath, project, ringPath, simplify, VIEWBOX, type Point } from './map.js';

describe('the map', () => {
  it('projects the regions inside the frame, west to east and north to south', () => {
    const [bkk, mnl, sg, jkt] = [project(13.7563, 100.5018), project(14.5995, 120.9842), project(1.3521, 103.8198), project(-6.2088, 106.8456)];
    for (const [x, y] of [bkk, mnl, sg, jkt]) {
      expect(x).toBeGreaterThan(0);
      expect(x).toBeLessThan(VIEWBOX.width);
      expect(y).toBeGreaterThan(0);
      expect(y).toBeLessThan(VIEWBOX.height);
    }
    expect(bkk[0]).toBeLessThan(sg[0]);
    expect(sg[0]).toBeLessThan(jkt[0]);
    expect(jkt[0]).toBeLessThan(mnl[0]);
    expect(bkk[1]).toBeLessThan(sg[1]);
    expect(sg[1]).toBeLessThan(jkt[1]);
  });

  it('clips a ring to the frame', () => {
    const square: Point[] = [[-10, -10], [10, -10], [10, 10], [-10, 10]];
    const clipped = clipRing(square, 100, 100);
    expect(area(clipped)).toBe(100);
    expect(clipped.every(([x, y]) => x >= 0 && y >= 0 && x <= 100 && y <= 100)).toBe(true);
    expect(clipRing([[200, 200], [300, 200], [300, 300]], 100, 100)).toEqual([]);
  });

  it('simplifies within epsilon and keeps the ends', () => {
    const line: Point[] = [[0, 0], [1, 0.1], [2, -0.1], [3, 5], [4, 0], [5, 0]];
    expect(simplify(line, 0.5)).toEqual([[0, 0], [2, -0.1], [3, 5], [4, 0], [5, 0]]);
    expect(simplify(line, 10)).toEqual([[0, 0], [5, 0]]);
  });

  it('writes compact relative path data', () => {
    expect(ringPath([[0, 0], [10.4, 0], [10, 10], [0, 10]])).toBe('M0 0l10 0 0 10-10 0z');
    expect(ringPath([[0, 0], [0.2, 0.2]])).toBe('');
  });

  it('draws Southeast Asia in a few kilobytes, once', () => {
    const d = landPath();
    expect(d.length).toBeGreaterThan(2000);
    expect(d.length).toBeLessThan(8000);
    expect(d).toMatch(/^M\d+ \d+l[-\d ]+z/);
    expect((d.match(/M/g) ?? []).length).toBeGreaterThan(20); // islands
  });
});
