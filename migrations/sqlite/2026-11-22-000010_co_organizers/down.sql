DROP TABLE co_organizers;
