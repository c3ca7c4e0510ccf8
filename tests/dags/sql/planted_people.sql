-- The planted-values table of test_no_real_values.py: every value in it is distinctive, so
-- a grep of the task logs, XCom and published files finds any that leaked.
SELECT person_id, email, full_name, phone, segment, amount, signup, notes
FROM planted_people
