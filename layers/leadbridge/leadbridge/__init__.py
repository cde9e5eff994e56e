"""leadbridge: every new CRM chat becomes exactly one normalized lead for the analytics cabinet."""
