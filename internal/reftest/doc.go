// Package reftest ports the test suite of django-rest-live, the library
// whose protocol restlive speaks, to restlive: the same scenarios, against
// GORM views on real SQLite and PostgreSQL, with changes captured by the
// database triggers. It holds tests only.
package reftest
