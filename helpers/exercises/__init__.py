"""The graded checks of the "Your turn" exercises, one module per notebook. Each ``check_*`` runs
the student's function on fixed inputs and raises :class:`CheckFailed` with a hint when it is wrong."""
