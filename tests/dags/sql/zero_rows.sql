-- Valid, but selects nobody: the bound parameter excludes every user.
SELECT id AS user_id, gender, age
FROM users
WHERE age > %(min_age)s
