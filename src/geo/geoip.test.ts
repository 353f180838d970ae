import { describe, expect, it } from 'vitest';
import { recordFacts } from './geoip.js';

describe('recordFacts', () => {
  // [shape, record, expected facts]
  it.each([
    [
      'MaxMind City',
      { city: { names: { en: 'Jakarta' } }, country: { iso_code: 'ID', names: { en: 'Indonesia' } }, location: { accuracy_radius: 20, latitude: -6.2146, longitude: 106.8451 } },
      { country: 'ID', location: { lat: -6.2146, lon: 106.8451 }, label: 'ID @-6.21,106.85' },
    ],
    ['MaxMind Country', { continent: { code: 'AS' }, country: { iso_code: 'SG' } }, { country: 'SG', location: { lat: 1.36666666, lon: 103.8 }, label: 'SG' }],
    ['MaxMind, registered country only', { registered_country: { iso_code: 'TH' } }, { country: 'TH', location: { lat: 15, lon: 100 }, label: 'TH' }],
    ['MaxMind, country beats registered country', { country: { iso_code: 'PH' }, registered_country: { iso_code: 'US' } }, { country: 'PH', location: { lat: 13, lon: 122 }, label: 'PH' }],
    ['MaxMind, location without coordinates', { country: { iso_code: 'MY' }, location: { accuracy_radius: 1000 } }, { country: 'MY', location: { lat: 2.5, lon: 112.5 }, label: 'MY' }],
    ['flat country', { country_code: 'VN' }, { country: 'VN', location: { lat: 16.16666666, lon: 107.83333333 }, label: 'VN' }],
    ['flat city', { country_code: 'TH', city: 'Bangkok', latitude: 13.7563, longitude: 100.5018 }, { country: 'TH', location: { lat: 13.7563, lon: 100.5018 }, label: 'TH @13.76,100.5' }],
    ['flat city, coordinates as text', { country_code: 'ph', latitude: '14.5995', longitude: '120.9842' }, { country: 'PH', location: { lat: 14.5995, lon: 120.9842 }, label: 'PH @14.6,120.98' }],
    ['flat, out-of-range coordinates', { country_code: 'SG', latitude: 91, longitude: 0 }, { country: 'SG', location: { lat: 1.36666666, lon: 103.8 }, label: 'SG' }],
    ['country unknown to world-countries', { country_code: 'ZZ' }, { country: 'ZZ', label: 'ZZ' }],
    ['coordinates, no country', { location: { latitude: 1.3, longitude: 103.8 } }, { location: { lat: 1.3, lon: 103.8 }, label: '?? @1.3,103.8' }],
  ])('%s', (_shape, record, facts) => {
    expect(recordFacts(record)).toEqual(facts);
  });

  it.each([
    ['empty', {}],
    ['continent only', { continent: { code: 'EU' } }],
    ['not a country code', { country_code: 'Indonesia' }],
    ['country not an object', { country: 'ID' }],
  ])('%s → nothing', (_shape, record) => {
    expect(recordFacts(record)).toBeUndefined();
  });
});
