import { describe, expect, it } from 'vitest';
import { countryLocation } from './countries.js';

describe('countryLocation', () => {
  it.each([
    ['ID', { lat: -5, lon: 120 }],
    ['SG', { lat: 1.36666666, lon: 103.8 }],
    ['TH', { lat: 15, lon: 100 }],
    ['PH', { lat: 13, lon: 122 }],
    ['MY', { lat: 2.5, lon: 112.5 }],
    ['VN', { lat: 16.16666666, lon: 107.83333333 }],
    ['sg', { lat: 1.36666666, lon: 103.8 }],
  ])('%s', (cc, location) => {
    expect(countryLocation(cc)).toEqual(location);
  });

  it.each(['ZZ', 'EU', '', 'SGP'])('%j is unknown', (cc) => {
    expect(countryLocation(cc)).toBeUndefined();
  });
});
