-- Returns age as text and drops language: disagrees with contract_mismatch.contract.yaml.
SELECT id AS user_id, gender, age::text AS age
FROM users
