-- Deliberately broken: a misspelt keyword on line 3.
SELECT id AS user_id, gender
FORM users
