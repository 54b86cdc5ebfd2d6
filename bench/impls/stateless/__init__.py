"""The ``stateless`` scenario's implementations: JSON decode -> filter amount > 10 -> map
(+amount_cents) -> JSON encode, one file per framework."""
